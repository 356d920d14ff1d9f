"""TokenizeJob: corpus sources → a token store that PretrainJobs read (``spec.tokens``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tanuki_operator.api.common import (
    ArtifactSource,
    CorpusJobSpec,
    Input,
    Output,
    bind_sources,
    dump_recipe,
    reads,
    reads_of,
    source_inputs,
)
from tanuki_pipelines.tokenize.config import TokenizeConfig


class TokenizeJobSpec(CorpusJobSpec):
    """Tokenize corpora once, outside the training pods, into a Megatron-LM indexed-dataset store."""

    tokenizer: ArtifactSource = Field(json_schema_extra=reads(Output.TOKENIZER))
    """The HF tokenizer: a path or an upstream that publishes one (a PretrainJob that trained it)."""
    recipe: TokenizeConfig
    """The sources (files, directories or globs; JSONL, compressed, parquet, text) and batching; its
    ``tokenizer`` is set from spec.tokenizer."""

    def recipe_sources(self) -> list[Any]:
        return list(self.recipe.sources)

    def inputs(self) -> dict[str, Input]:
        return {**source_inputs(self.sourcesFrom),
                "tokenizer": Input(self.tokenizer, "spec.tokenizer", reads_of(TokenizeJobSpec, "tokenizer"))}

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        bind_sources(recipe["sources"], resolved)
        recipe["tokenizer"] = resolved["tokenizer"]
        return recipe
