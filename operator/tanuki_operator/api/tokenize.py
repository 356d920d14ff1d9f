"""TokenizeJob: corpus sources → a token store that PretrainJobs read (``spec.tokens``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tanuki_operator.api.common import (
    ArtifactSource,
    Input,
    JobSpec,
    Output,
    RayCluster,
    SourceBinding,
    bind_sources,
    check_bindings,
    dump_recipe,
    reads,
    reads_of,
    source_inputs,
)
from tanuki_pipelines.tokenize.config import TokenizeConfig


class TokenizeOnRay(RayCluster):
    """Tokenize on a KubeRay cluster: Ray Data tasks on the worker pods, which mount spec.storage."""

    workerGpus: int = Field(default=0, ge=0)
    """GPUs per Ray worker pod (tokenizing needs none)."""
    workers: int = Field(default=2, ge=1)
    """Ray worker pods, each with spec.resources."""


class TokenizeJobSpec(JobSpec):
    """Tokenize corpora once, outside the training pods, into a Megatron-LM indexed-dataset store."""

    tokenizer: ArtifactSource = Field(json_schema_extra=reads(Output.TOKENIZER))
    """The HF tokenizer: a path or an upstream that publishes one (a PretrainJob that trained it)."""
    recipe: TokenizeConfig
    """The sources (files, directories or globs; JSONL, compressed, parquet, text) and batching; its
    ``tokenizer`` is set from spec.tokenizer."""
    sourcesFrom: list[SourceBinding] = Field(default_factory=list)
    """Sources whose files come from upstream jobs' datasets (a SynthJob's)."""
    ray: TokenizeOnRay | None = None
    """Run as a KubeRay RayJob across ``ray.workers`` pods; unset: one pod, a process pool within
    spec.resources.cpu."""

    @model_validator(mode="after")
    def _bindings_name_sources(self) -> TokenizeJobSpec:
        sources = self.recipe.sources
        check_bindings([s.name for s in sources], [s.name for s in sources if s.path is None], self.sourcesFrom,
                       "recipe.sources")
        return self

    def inputs(self) -> dict[str, Input]:
        return {**source_inputs(self.sourcesFrom),
                "tokenizer": Input(self.tokenizer, "spec.tokenizer", reads_of(TokenizeJobSpec, "tokenizer"))}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        bind_sources(recipe["sources"], resolved)
        recipe["tokenizer"] = resolved["tokenizer"]
        return recipe

    def ray_cluster(self) -> tuple[RayCluster, int] | None:
        return None if self.ray is None else (self.ray, self.ray.workers)
