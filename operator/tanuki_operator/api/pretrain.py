"""PretrainJob: tokenizer + dense pretraining, one pod per node running torchrun → DeepSpeed."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tanuki_operator.api.common import ArtifactSource, Input, JobSpec, K8sModel, ObjectRef, Output, dump_recipe, reads, reads_of
from tanuki_pipelines.pretrain.config import PretrainConfig


class SourceBinding(K8sModel):
    """Fill a data source's path from an upstream job's dataset (e.g. a SynthJob)."""

    source: str
    """Name of the data source in recipe.data.sources."""
    from_: ObjectRef = Field(alias="from", json_schema_extra=reads(Output.DATASET))
    """Upstream resource whose status.outputs.dataset becomes the source's path."""


class PretrainJobSpec(JobSpec):
    """Train the tokenizer (if the recipe asks) and pretrain a Llama-shaped model."""

    recipe: PretrainConfig
    """The pretraining recipe, as in pipelines/recipes/*/pretrain.yaml."""
    sourcesFrom: list[SourceBinding] = Field(default_factory=list)
    """Data sources whose files come from upstream jobs."""
    initFrom: ArtifactSource | None = Field(default=None, json_schema_extra=reads(Output.CHECKPOINT))
    """Start from this checkpoint instead of a random init (e.g. an UpcycleJob's MoE for
    continued pretraining); sets recipe.init_from."""

    @model_validator(mode="after")
    def _bindings_name_sources(self) -> PretrainJobSpec:
        names = [source.name for source in self.recipe.data.sources]
        bound = {binding.source for binding in self.sourcesFrom}
        unknown = sorted(bound - set(names))
        if unknown:
            raise ValueError(f"sourcesFrom: unknown sources {unknown}; recipe has {names}")
        unset = [s.name for s in self.recipe.data.sources if s.path is None and s.name not in bound]
        if unset:
            raise ValueError(f"recipe.data.sources: {unset} have neither a path nor a sourcesFrom binding")
        return self

    def inputs(self) -> dict[str, Input]:
        sources = {f"source:{b.source}": Input(b.from_, f"spec.sourcesFrom[{index}]", reads_of(SourceBinding, "from_"))
                   for index, b in enumerate(self.sourcesFrom)}
        if self.initFrom is not None:
            sources["init_from"] = Input(self.initFrom, "spec.initFrom", reads_of(PretrainJobSpec, "initFrom"))
        return sources

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        for source in recipe["data"]["sources"]:
            if f"source:{source['name']}" in resolved:
                source["path"] = resolved[f"source:{source['name']}"]
        if "init_from" in resolved:
            recipe["init_from"] = resolved["init_from"]
        return recipe
