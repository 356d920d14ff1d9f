"""QuantizeJob: a finished checkpoint → a smaller one vLLM (compressed-tensors) or llama.cpp (GGUF) serves."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tanuki_operator.api.common import ArtifactSource, Input, JobSpec, Output, dump_recipe, reads, reads_of
from tanuki_pipelines.quantize.config import QuantizeConfig


class QuantizeJobSpec(JobSpec):
    """Quantize a checkpoint with llmcompressor (W8A8, W4A16, FP8) or llama.cpp (GGUF), then gate it
    on its agreement with the source model."""

    model: ArtifactSource = Field(json_schema_extra=reads(Output.CHECKPOINT))
    """The checkpoint to quantize: a path or a finished job (PretrainJob, UpcycleJob, SFTJob, DPOJob)."""
    calibration: ArtifactSource | None = Field(default=None, json_schema_extra=reads(Output.DATASET))
    """Calibration and held-out texts: a JSONL path (``text`` or ``messages`` records) or a SynthJob
    (its dataset); default: ``recipe.calibration.path``."""
    recipe: QuantizeConfig = Field(default_factory=QuantizeConfig)
    """Scheme, calibration and quality gate settings."""

    @model_validator(mode="after")
    def _hardware(self) -> QuantizeJobSpec:
        """What ``spec.resources`` cannot run, refused at the first look rather than in the pod."""
        if not self.resources.gpus and self.recipe.scheme == "FP8":
            raise ValueError("recipe.scheme: FP8 needs a GPU to calibrate and serve but resources.gpus is 0; "
                             "use W8A8 or W4A16 on the CPU backend, or request a GPU")
        if not self.resources.gpus and self.recipe.device == "cuda":
            raise ValueError("recipe.device: cuda but resources.gpus is 0; use device auto or cpu, or request a GPU")
        return self

    def inputs(self) -> dict[str, Input]:
        found = {"model": Input(self.model, "spec.model", reads_of(QuantizeJobSpec, "model"))}
        if self.calibration is not None:
            found["calibration"] = Input(self.calibration, "spec.calibration", reads_of(QuantizeJobSpec, "calibration"))
        return found

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = {**dump_recipe(self.recipe), "source": resolved["model"]}
        if "calibration" in resolved:
            recipe["calibration"] = {**recipe.get("calibration", {}), "path": resolved["calibration"]}
        return recipe
