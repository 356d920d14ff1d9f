"""SynthJob: an LLM rewrites documents and writes dialogues, batched through Ray Data."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tanuki_operator.api.common import (
    ArtifactSource,
    Endpoint,
    Input,
    JobSpec,
    Output,
    RayCluster,
    SecretKeyRef,
    dump_recipe,
    reads,
    reads_of,
)
from tanuki_pipelines.synth.config import SynthConfig


class SynthJobSpec(JobSpec):
    """Generate synthetic pretraining/SFT data with vLLM."""

    model: ArtifactSource | None = Field(default=None, json_schema_extra=reads(Output.CHECKPOINT))
    """The generator LLM run by vLLM in Ray Data actors: a path or a finished training job."""
    endpoint: Endpoint | None = None
    """Instead of ``model``: an OpenAI-compatible generator (a ModelServer, or a URL with its
    ``apiKey``); the recipe's ``engine`` becomes ``endpoint``."""
    recipe: SynthConfig = Field(default_factory=SynthConfig)
    """Styles, dialogues, filters and Ray settings."""
    ray: RayCluster = Field(default_factory=RayCluster)
    """KubeRay RayJob settings (cluster mode)."""

    @model_validator(mode="after")
    def _one_generator(self) -> SynthJobSpec:
        if (self.model is None) == (self.endpoint is None):
            raise ValueError("set exactly one of model (vLLM in Ray) and endpoint (an OpenAI-compatible API)")
        return self

    def inputs(self) -> dict[str, Input]:
        if self.endpoint is not None:
            return self.endpoint.inputs("generator", "spec.endpoint")
        assert self.model is not None, "_one_generator: model is set when endpoint is not"
        return {"model": Input(self.model, "spec.model", reads_of(SynthJobSpec, "model"))}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        if self.endpoint is None:
            recipe["generator"]["path"] = resolved["model"]
            return recipe
        bound = self.endpoint.bound("generator", resolved, "GENERATOR_API_KEY")
        recipe["engine"] = "endpoint"
        recipe["endpoint"] = {**(recipe.get("endpoint") or {}), **{k: v for k, v in bound.items() if v is not None}}
        return recipe

    def ray_cluster(self) -> tuple[RayCluster, int] | None:
        return (self.ray, self.recipe.ray.workers) if self.recipe.ray.mode == "cluster" else None

    def secrets(self) -> dict[str, SecretKeyRef]:
        if self.endpoint is not None and self.endpoint.apiKey is not None:
            return {"GENERATOR_API_KEY": self.endpoint.apiKey}
        return {}
