"""DPOJob: preference pairs (generate twice, judge both orders) then TRL DPO."""

from __future__ import annotations

from pydantic import Field

from tanuki_operator.api.common import ArtifactSource, JobSpec, SecretKeyRef
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
