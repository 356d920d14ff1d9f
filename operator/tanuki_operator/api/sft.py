"""SFTJob: chat fine-tuning with TRL under DeepSpeed ZeRO-3."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tanuki_operator.api.common import ArtifactSource, Input, JobSpec, Output, dump_recipe, reads, reads_of
from tanuki_pipelines.sft.config import SFTConfig


class SFTJobSpec(JobSpec):
    """Supervised fine-tuning on chat data."""

    model: ArtifactSource = Field(json_schema_extra=reads(Output.CHECKPOINT))
    """Starting checkpoint: a path or an upstream job (PretrainJob, UpcycleJob)."""
    dataset: ArtifactSource = Field(json_schema_extra=reads(Output.DIALOGUES))
    """Chat JSONL (``{"messages": [...]}`` per line): a path, or a SynthJob (its kept dialogues)."""
    recipe: SFTConfig = Field(default_factory=SFTConfig)
    """TRL SFT settings."""

    def inputs(self) -> dict[str, Input]:
        return {"model": Input(self.model, "spec.model", reads_of(SFTJobSpec, "model")),
                "dataset": Input(self.dataset, "spec.dataset", reads_of(SFTJobSpec, "dataset"))}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        return {**dump_recipe(self.recipe), "model": resolved["model"], "dataset": resolved["dataset"]}
