"""Pretraining data: the recipe's sources as a token store, read as packed blocks.

A store built ahead of training (``data.store``, a TokenizeJob's output) is read as it is.
Without one, a run builds it itself from the raw sources (``tanuki_pipelines.tokenize``: streamed,
shard by shard, a process pool within the machine's cores) into ``<output>/data/store-<digest>``,
where the digest covers the input files (path, size, modification time), how they are read, and
the tokenizer's files: a resumed run reuses the store, a changed input or tokenizer builds another.
Each source reads as ``(n, seq_len + 1)`` blocks of its documents joined with EOS (inputs are
``[:-1]``, labels ``[1:]``), the same blocks packing the whole corpus in memory gave, whatever the
number of files or workers.
"""

from __future__ import annotations

import json
from pathlib import Path

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import DataSource
from tanuki_pipelines.tokenize.config import TokenizeConfig
from tanuki_pipelines.tokenize.store import STORE_FILE, PackedSource, open_sources, read_store

CURRENT_FILE = "current.json"
"""In the data cache directory: which store this run trains on."""


def store_config(sources: list[DataSource], tokenizer_dir: Path) -> TokenizeConfig:
    return TokenizeConfig(sources=sources, tokenizer=tokenizer_dir)


def prepare_store(sources: list[DataSource], tokenizer_dir: Path, cache_dir: Path, cpus: int) -> Path:
    """Build (or reuse) the store of ``sources``; records it as the run's current store."""
    from tanuki_pipelines.publish import write_durable
    from tanuki_pipelines.tokenize.build import build_store, plan, plan_digest

    config = store_config(sources, tokenizer_dir)
    _, description = plan(config, cache_dir)
    store = cache_dir / f"store-{plan_digest(description)}"
    if not (store / STORE_FILE).is_file():
        build_store(config, store, cpus, label="pretrain")
    write_durable(cache_dir / CURRENT_FILE, json.dumps({"store": str(store)}) + "\n")
    return store


def use_store(store: Path, tokenizer_dir: Path, cache_dir: Path) -> Path:
    """A store built ahead (``data.store``) as the run's current store, once its ids are known to be
    the tokenizer's: a store of another tokenizer would train on the wrong ids without an error."""
    from tanuki_pipelines.publish import write_durable
    from tanuki_pipelines.tokenize.build import tokenizer_fingerprint

    built_with = read_store(store).get("tokenizer_fingerprint")
    if built_with is not None and built_with != tokenizer_fingerprint(tokenizer_dir):
        raise BadInputError(f"tokenizer.path: {tokenizer_dir} is not the tokenizer data.store ({store}) was tokenized "
                            f"with (fingerprint {tokenizer_fingerprint(tokenizer_dir)}, the store's {built_with}); "
                            "leave tokenizer.path unset to use the store's copy")
    cache_dir.mkdir(parents=True, exist_ok=True)
    write_durable(cache_dir / CURRENT_FILE, json.dumps({"store": str(store)}) + "\n")
    return store


def current_store(cache_dir: Path) -> Path:
    return Path(json.loads((cache_dir / CURRENT_FILE).read_text())["store"])


def open_packed(store: Path, sources: list[DataSource], seq_len: int) -> list[PackedSource]:
    """Each source as packed blocks; a source too small for one block is an error naming it."""
    packed = open_sources(store, [source.name for source in sources], seq_len)
    for source, blocks in zip(sources, packed, strict=True):
        if len(blocks) == 0:
            raise BadInputError(f"data source {source.name!r}: {source.path} has {blocks.tokens} tokens, fewer than "
                                f"one training sequence (train.seq_len + 1 = {seq_len + 1})")
    return packed
