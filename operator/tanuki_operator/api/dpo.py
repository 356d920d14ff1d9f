"""DPOJob: preference pairs (generate twice, judge both orders) then TRL DPO."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tanuki_operator.api.common import (
    ArtifactSource,
    Endpoint,
    Input,
    JobSpec,
    Output,
    SecretKeyRef,
    dump_recipe,
    reads,
    reads_of,
)
from tanuki_pipelines.dpo.config import DPOConfig

JUDGE_KEY_ENV = "JUDGE_API_KEY"


class DPOJobSpec(JobSpec):
    """Direct preference optimisation: the policy answers each prompt twice, a judge picks the
    better answer in both orders, TRL trains on the consistent pairs."""

    model: ArtifactSource = Field(json_schema_extra=reads(Output.CHECKPOINT))
    """Policy checkpoint: a path or an SFTJob."""
    prompts: ArtifactSource = Field(json_schema_extra=reads(Output.DATASET))
    """Prompts JSONL (``{"prompt"}`` or ``{"messages"}``), or ready prompt/chosen/rejected pairs
    when ``recipe.generate`` is false."""
    judge: Endpoint | None = None
    """The judge: a ModelServer (the job waits until it serves) or a URL with its model name and
    ``apiKey``; required when ``recipe.generate`` is true."""
    recipe: DPOConfig = Field(default_factory=DPOConfig)
    """Pair generation, judging and TRL DPO settings."""

    @model_validator(mode="after")
    def _judge_when_generating(self) -> DPOJobSpec:
        if self.recipe.generate and self.judge is None:
            raise ValueError("judge: required when recipe.generate is true (a ModelServer or a url)")
        if self.nodes != 1:
            raise ValueError("nodes: DPOJob runs in one pod (generate, judge and train on its GPUs); set nodes: 1")
        return self

    def inputs(self) -> dict[str, Input]:
        found = {"model": Input(self.model, "spec.model", reads_of(DPOJobSpec, "model")),
                 "prompts": Input(self.prompts, "spec.prompts", reads_of(DPOJobSpec, "prompts"))}
        if self.judge is not None and self.recipe.generate:
            found.update(self.judge.inputs("judge", "spec.judge"))
        return found

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = {**dump_recipe(self.recipe), "model": resolved["model"], "prompts": resolved["prompts"]}
        if self.judge is not None and self.recipe.generate:
            bound = self.judge.bound("judge", resolved, JUDGE_KEY_ENV)
            judge = {**recipe["pairs"].get("judge", {}), **{k: v for k, v in bound.items() if v is not None}}
            if not self.judge.apiKey:
                judge.pop("api_key_env", None)
            recipe["pairs"] = {**recipe["pairs"], "judge": judge}
        return recipe

    def secrets(self) -> dict[str, SecretKeyRef]:
        if self.judge is not None and self.judge.apiKey is not None and self.recipe.generate:
            return {JUDGE_KEY_ENV: self.judge.apiKey}
        return {}
