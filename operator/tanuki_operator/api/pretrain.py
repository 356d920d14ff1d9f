"""PretrainJob: tokenizer + dense pretraining, one pod per node running torchrun → DeepSpeed."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tanuki_operator.api.common import (
    ArtifactSource,
    Input,
    JobSpec,
    Output,
    SourceBinding,
    bind_sources,
    check_bindings,
    dump_recipe,
    reads,
    reads_of,
    source_inputs,
)
from tanuki_pipelines.pretrain.config import NO_TOKENIZER, PretrainConfig


class PretrainJobSpec(JobSpec):
    """Train the tokenizer (if the recipe asks) and pretrain a Llama-shaped model."""

    recipe: PretrainConfig
    """The pretraining recipe, as in pipelines/recipes/*/pretrain.yaml."""
    sourcesFrom: list[SourceBinding] = Field(default_factory=list)
    """Data sources whose files come from upstream jobs."""
    initFrom: ArtifactSource | None = Field(default=None, json_schema_extra=reads(Output.CHECKPOINT))
    """Start from this checkpoint instead of a random init (e.g. an UpcycleJob's MoE for
    continued pretraining); sets recipe.init_from."""

    tokens: ArtifactSource | None = Field(default=None, json_schema_extra=reads(Output.TOKENS))
    """A token store built ahead (a TokenizeJob): the recipe's sources are read from it by name, with
    its tokenizer unless recipe.tokenizer names one; sets recipe.data.store."""

    @model_validator(mode="after")
    def _sources_and_tokenizer_named(self) -> PretrainJobSpec:
        sources = self.recipe.data.sources
        tokenizer = self.recipe.tokenizer
        if tokenizer.path is None and tokenizer.train is None and self.tokens is None and self.recipe.data.store is None:
            raise ValueError(f"recipe.{NO_TOKENIZER}, or spec.tokens")
        if self.tokens is not None or self.recipe.data.store is not None:
            if self.sourcesFrom:
                raise ValueError("sourcesFrom: not used with a token store (spec.tokens or recipe.data.store): "
                                 "the store holds the sources; bind them in the TokenizeJob")
            return self
        trained = tokenizer.train.sources if tokenizer.train is not None else []
        check_bindings([s.name for s in [*sources, *trained]], [s.name for s in [*sources, *trained] if s.path is None],
                       self.sourcesFrom, "recipe.data.sources and recipe.tokenizer.train.sources")
        return self

    def inputs(self) -> dict[str, Input]:
        sources = source_inputs(self.sourcesFrom)
        if self.initFrom is not None:
            sources["init_from"] = Input(self.initFrom, "spec.initFrom", reads_of(PretrainJobSpec, "initFrom"))
        if self.tokens is not None:
            sources["tokens"] = Input(self.tokens, "spec.tokens", reads_of(PretrainJobSpec, "tokens"))
        return sources

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        bind_sources(recipe["data"]["sources"], resolved)
        if isinstance(recipe.get("tokenizer", {}).get("train"), dict):
            bind_sources(recipe["tokenizer"]["train"]["sources"], resolved)
        if "init_from" in resolved:
            recipe["init_from"] = resolved["init_from"]
        if "tokens" in resolved:
            recipe["data"]["store"] = resolved["tokens"]
        return recipe
