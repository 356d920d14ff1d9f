"""SynthJob: an LLM rewrites documents and writes dialogues, batched through Ray Data."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tanuki_operator.api.common import ArtifactSource, Input, JobSpec, K8sModel, dump_recipe
from tanuki_pipelines.synth.config import SynthConfig


class RayCluster(K8sModel):
    """KubeRay settings used when recipe.ray.mode is ``cluster``."""

    rayVersion: str = "2.60.0"
    """Ray version of the image (KubeRay needs it)."""
    workerGpus: int = Field(default=1, ge=0)
    """GPUs per Ray worker pod."""
    shutdownAfterJobFinishes: bool = True
    """Delete the Ray cluster when the job ends."""


class SynthJobSpec(JobSpec):
    """Generate synthetic pretraining/SFT data with vLLM."""

    model: ArtifactSource
    """The generator LLM: a path or a finished training job."""
    recipe: SynthConfig = Field(default_factory=SynthConfig)
    """Styles, dialogues, filters and Ray settings."""
    ray: RayCluster = Field(default_factory=RayCluster)
    """KubeRay RayJob settings (cluster mode)."""

    def inputs(self) -> dict[str, Input]:
        return {"model": Input(self.model)}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        recipe["generator"]["path"] = resolved["model"]
        return recipe
