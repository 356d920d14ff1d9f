"""EvalJob: MT-Bench-style judge grading, arena ratings and lm-evaluation-harness scores of served models."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tanuki_operator.api.common import (
    Endpoint,
    Input,
    JobSpec,
    Output,
    RatedEndpoint,
    SecretKeyRef,
    dump_recipe,
    endpoints_inputs,
    endpoints_secrets,
    rated_endpoints_recipe,
)
from tanuki_pipelines.eval.config import EvalConfig


class EvalTarget(RatedEndpoint):
    """A model under test."""

    tokenizer: str | None = None
    """``recipe.mode: harness``: the tokenizer the harness counts tokens with (a path on the job's
    volume or a hub id); default for a ModelServer: its stable checkpoint; otherwise the server's
    own ``/tokenize`` (vLLM with ``--enable-tokenizer-info-endpoint``)."""

    def inputs(self, role: str, spec_field: str) -> dict[str, Input]:
        found = super().inputs(role, spec_field)
        if self.from_ is not None and self.tokenizer is None:
            found[f"{role}:checkpoint"] = Input(self.from_, spec_field, output=Output.CHECKPOINT, required=False)
        return found

    def bound(self, role: str, resolved: dict[str, str], key_env: str) -> dict[str, Any]:
        return {**super().bound(role, resolved, key_env),
                "tokenizer": self.tokenizer or resolved.get(f"{role}:checkpoint")}


class EvalJobSpec(JobSpec):
    """Grade served models with an LLM judge, rate them against each other in arena battles, or
    score them on lm-evaluation-harness tasks."""

    targets: list[EvalTarget] = Field(min_length=1)
    """The models under test (``recipe.mode: arena`` needs two or more)."""
    judge: Endpoint | None = None
    """The judge (every mode needs one but ``gate`` with only the perplexity or harness gates)."""
    recipe: EvalConfig = Field(default_factory=EvalConfig)
    """Mode (grade, arena, harness), questions, prompts, rating and harness settings."""

    @model_validator(mode="after")
    def _enough_targets(self) -> EvalJobSpec:
        if self.recipe.mode == "arena" and len(self.targets) < 2:
            raise ValueError("targets: recipe.mode arena needs at least two targets")
        if self.recipe.mode == "gate" and (len(self.targets) > 2 or (len(self.targets) == 1
                                                                     and not self.recipe.gate.bars())):
            raise ValueError("targets: recipe.mode gate compares two targets, the canary then its reference, or "
                             "judges one against the gates' absolute bars (max_perplexity, min_grade, min_scores)")
        if self.judge is None and (self.recipe.mode != "gate" or self.recipe.gate.needs_judge()):
            raise ValueError(f"judge: recipe.mode {self.recipe.mode} needs a judge")
        return self

    def inputs(self) -> dict[str, Input]:
        found = endpoints_inputs(self.targets, "target", "spec.targets")
        if self.judge is not None:
            found.update(self.judge.inputs("judge", "spec.judge"))
        return found

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        recipe["targets"] = rated_endpoints_recipe(self.targets, "target", resolved)
        if self.judge is not None:
            judge = {k: v for k, v in self.judge.bound("judge", resolved, "JUDGE_API_KEY").items() if v is not None}
            recipe["judge"] = {**recipe.get("judge", {}), **judge}
            if not self.judge.apiKey:
                recipe["judge"].pop("api_key_env", None)
        return recipe

    def secrets(self) -> dict[str, SecretKeyRef]:
        found = endpoints_secrets(self.targets, "target")
        if self.judge is not None and self.judge.apiKey:
            found["JUDGE_API_KEY"] = self.judge.apiKey
        return found
