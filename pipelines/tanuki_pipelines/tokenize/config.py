"""Recipe of the token-store stage (pydantic only)."""

from __future__ import annotations

from pydantic import Field, field_validator

from tanuki_pipelines.config import ConfigModel, DataSource, InputPath


class TokenizeConfig(ConfigModel):
    """Tokenize corpus sources into a token store (Megatron indexed dataset), one shard per input file."""

    sources: list[DataSource] = Field(min_length=1)
    """The corpora, by name (pretraining's mixture weights refer to these names)."""
    tokenizer: InputPath | None = None
    """An HF tokenizer directory; every document is its tokens followed by this tokenizer's EOS.
    (Required to run; a shipped recipe leaves it to ``--set tokenizer=DIR``.)"""
    batch_documents: int = Field(default=1000, ge=1)
    """Documents handed to the tokenizer at once (its Rust core parallelises within a batch)."""
    workers: int | None = Field(default=None, ge=1)
    """Shards tokenized at once on this machine (a process pool). Empty: ``--cpus``, at most one per
    shard; each worker's tokenizer then gets the cores left to it (``RAYON_NUM_THREADS``)."""

    @field_validator("sources")
    @classmethod
    def _distinct_names(cls, sources: list[DataSource]) -> list[DataSource]:
        names = [source.name for source in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"two sources share a name: {names}")
        return sources
