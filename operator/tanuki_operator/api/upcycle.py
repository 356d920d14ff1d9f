"""UpcycleJob: dense checkpoint → Mixture-of-Experts checkpoint."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tanuki_operator.api.common import ArtifactSource, Input, JobSpec, Output, dump_recipe, reads, reads_of
from tanuki_pipelines.upcycle.config import UpcycleConfig


class UpcycleJobSpec(JobSpec):
    """Copy a dense model's FFN into experts and add a router."""

    model: ArtifactSource = Field(json_schema_extra=reads(Output.CHECKPOINT))
    """The dense checkpoint: a path or a PretrainJob."""
    recipe: UpcycleConfig = Field(default_factory=UpcycleConfig)
    """Upcycling settings (experts, top-k, noise, router, gate normalisation)."""

    def inputs(self) -> dict[str, Input]:
        return {"model": Input(self.model, "spec.model", reads_of(UpcycleJobSpec, "model"))}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        return {**dump_recipe(self.recipe), "source": resolved["model"]}
