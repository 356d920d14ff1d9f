"""SFTJob: chat fine-tuning with TRL under DeepSpeed ZeRO-3."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tanuki_operator.api.common import ArtifactSource, Input, JobSpec, dump_recipe
from tanuki_pipelines.sft.config import SFTConfig


class SFTJobSpec(JobSpec):
    """Supervised fine-tuning on chat data."""

    model: ArtifactSource
    """Starting checkpoint: a path or an upstream job (PretrainJob, UpcycleJob)."""
    dataset: ArtifactSource
    """Chat JSONL (``{"messages": [...]}`` per line): a path, or a SynthJob (its kept dialogues)."""
    recipe: SFTConfig = Field(default_factory=SFTConfig)
    """TRL SFT settings."""

    def inputs(self) -> dict[str, Input]:
        return {"model": Input(self.model), "dataset": Input(self.dataset, output="dialogues")}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        return {**dump_recipe(self.recipe), "model": resolved["model"], "dataset": resolved["dataset"]}
