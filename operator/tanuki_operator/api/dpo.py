"""DPOJob: preference pairs (generate twice, judge both orders) then TRL DPO."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tanuki_operator.api.common import ArtifactSource, Input, JobSpec, SecretKeyRef, dump_recipe
from tanuki_pipelines.dpo.config import DPOConfig


class DPOJobSpec(JobSpec):
    """Direct preference optimisation."""

    model: ArtifactSource
    """Policy checkpoint: a path or an SFTJob."""
    prompts: ArtifactSource
    """Prompts (or ready pairs) JSONL."""
    judgeApiKey: SecretKeyRef | None = None
    """Secret key holding the judge endpoint's API key."""
    recipe: DPOConfig = Field(default_factory=DPOConfig)
    """Pair generation, judging and TRL DPO settings."""

    def inputs(self) -> dict[str, Input]:
        return {"model": Input(self.model), "prompts": Input(self.prompts, output="dataset")}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        return {**dump_recipe(self.recipe), "model": resolved["model"], "prompts": resolved["prompts"]}

    def secrets(self) -> dict[str, SecretKeyRef]:
        return {self.recipe.pairs.judge.api_key_env: self.judgeApiKey} if self.judgeApiKey else {}
