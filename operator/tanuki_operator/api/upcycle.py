"""UpcycleJob: dense checkpoint → Mixture-of-Experts checkpoint."""

from __future__ import annotations

from pydantic import Field

from tanuki_operator.api.common import ArtifactSource, JobSpec
from tanuki_pipelines.upcycle.config import UpcycleConfig


class UpcycleJobSpec(JobSpec):
    """Copy a dense model's FFN into experts and add a router."""

    model: ArtifactSource
    """The dense checkpoint: a path or a PretrainJob."""
    recipe: UpcycleConfig = Field(default_factory=UpcycleConfig)
    """Upcycling settings (experts, top-k, noise, router, gate normalisation)."""
