"""CurateJob: corpora → cleaned and deduplicated shards that TokenizeJobs and PretrainJobs read."""

from __future__ import annotations

from typing import Any

from tanuki_operator.api.common import CorpusJobSpec, Input, bind_sources, dump_recipe, source_inputs
from tanuki_pipelines.curate.config import CurateConfig


class CurateJobSpec(CorpusJobSpec):
    """Clean and deduplicate corpora: per-document steps, then exact and MinHash near duplicates
    corpus-wide; each source's kept documents in its own directory of the dataset."""

    recipe: CurateConfig
    """Sources (files, directories or globs; JSONL, compressed, parquet, text), steps and outputs."""

    def recipe_sources(self) -> list[Any]:
        return list(self.recipe.sources)

    def inputs(self) -> dict[str, Input]:
        return source_inputs(self.sourcesFrom)

    def stage_recipe(self, resolved: dict[str, str]) -> dict[str, Any]:
        recipe = dump_recipe(self.recipe)
        bind_sources(recipe["sources"], resolved)
        return recipe
