"""EvalJob: MT-Bench-style judge grading and arena ratings of a served model."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tanuki_operator.api.common import Input, JobSpec, K8sModel, ObjectRef, SecretKeyRef, dump_recipe
from tanuki_pipelines.eval.config import EvalConfig


class EvalTarget(K8sModel):
    """The model under test: a ModelServer or any OpenAI-compatible URL."""

    url: str | None = None
    """Base URL of an OpenAI-compatible API."""
    from_: ObjectRef | None = Field(default=None, alias="from")
    """A ModelServer; the job waits until it serves."""

    @model_validator(mode="after")
    def _exactly_one(self) -> "EvalTarget":
        if (self.url is None) == (self.from_ is None):
            raise ValueError("set exactly one of url and from")
        if self.from_ is not None and self.from_.kind != "ModelServer":
            raise ValueError("from.kind must be ModelServer")
        return self


class EvalJobSpec(JobSpec):
    """Grade and rate a model with an LLM judge."""

    target: EvalTarget
    """What is evaluated."""
    judgeApiKey: SecretKeyRef | None = None
    """Secret key holding the judge endpoint's API key."""
    recipe: EvalConfig = Field(default_factory=EvalConfig)
    """Questions, judge and rating settings."""

    def inputs(self) -> dict[str, Input]:
        if self.target.from_ is None:
            return {"target_url": Input(str(self.target.url))}
        return {"target_url": Input(self.target.from_, output="url"),
                "target_model": Input(self.target.from_, output="model", required=False)}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        return {**dump_recipe(self.recipe), "target_url": resolved["target_url"],
                "target_model": resolved.get("target_model")}

    def secrets(self) -> dict[str, SecretKeyRef]:
        return {self.recipe.judge.api_key_env: self.judgeApiKey} if self.judgeApiKey else {}
