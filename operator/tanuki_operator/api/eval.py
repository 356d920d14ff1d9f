"""EvalJob: MT-Bench-style judge grading and arena ratings of a served model."""

from __future__ import annotations

from pydantic import Field, model_validator

from tanuki_operator.api.common import JobSpec, K8sModel, ObjectRef, SecretKeyRef
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
