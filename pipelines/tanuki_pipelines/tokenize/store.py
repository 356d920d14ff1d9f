"""The token store: Megatron-LM's indexed dataset, one ``.bin``/``.idx`` pair per input file.

Layout of a store directory::

    store.json                      written last: what the store holds (below)
    tokenizer/                      a copy of the HF tokenizer the ids come from
    stats.json                      tokens and documents per source and per shard, bad records, speed
    shards/<source>/<NNNNN>.bin     every document's tokens followed by the tokenizer's EOS, back to back
    shards/<source>/<NNNNN>.idx     Megatron's index (document lengths and offsets, dtype)
    shards/<source>/<NNNNN>.json    the shard's own statistics: its presence marks the shard finished

Each ``<NNNNN>`` prefix is written by ``megatron.core``'s ``IndexedDatasetBuilder`` and opens with
its ``IndexedDataset``, so Megatron-LM trains from it (list the prefixes in ``--data-path``) and a
store Megatron's ``preprocess_data.py`` wrote with ``--append-eod`` is read here the same way.

Reading for training (``PackedSource``): a source's shards, in order, are one token stream (a
``.bin`` is its documents' tokens back to back, each ending in EOS); block ``i`` of ``seq_len + 1``
tokens is ``stream[i * (seq_len + 1) : (i + 1) * (seq_len + 1)]``, read through memory maps. So
blocks cross shard boundaries, do not depend on how many shards or workers built the store, equal
what packing the whole corpus in memory gives, and reading needs only the shards' token counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tanuki_common.errors import BadInputError

STORE_FILE = "store.json"
STATS_FILE = "stats.json"
SHARDS_DIR = "shards"
TOKENIZER_DIR = "tokenizer"
FORMAT = "megatron-indexed-dataset"


@dataclass(frozen=True)
class ShardEntry:
    prefix: str
    """Path prefix of the shard's ``.bin``/``.idx``, relative to the store."""
    file: str
    """The input file it was built from."""
    documents: int
    tokens: int
    """Tokens in the ``.bin``, EOS included."""


def read_store(directory: Path) -> dict[str, Any]:
    """``store.json`` of a finished store; an unfinished or foreign directory is a named error."""
    path = Path(directory) / STORE_FILE
    try:
        store = json.loads(path.read_text())
    except (OSError, ValueError):
        raise BadInputError(f"{directory}: not a finished token store (no readable {STORE_FILE})") from None
    if store.get("format") != FORMAT:
        raise BadInputError(f"{path}: format {store.get('format')!r}, expected {FORMAT!r}")
    return store


class PackedSource:
    """One source of a store as ``(n, seq_len + 1)`` blocks: ``len`` and integer indexing, like the
    array it replaces, reading only the bytes of the asked block."""

    def __init__(self, directory: Path, entries: list[ShardEntry], dtype: str, seq_len: int) -> None:
        self.block = seq_len + 1
        self.dtype = np.dtype(dtype)
        self.entries = [entry for entry in entries if entry.tokens]
        self.maps = [np.memmap(Path(directory) / f"{entry.prefix}.bin", dtype=self.dtype, mode="r",
                               shape=(entry.tokens,)) for entry in self.entries]
        self.starts = np.cumsum([0] + [entry.tokens for entry in self.entries])
        """Token offset of each shard in the source's stream (one entry per shard, not per document)."""
        self.tokens = int(self.starts[-1])

    def __len__(self) -> int:
        return self.tokens // self.block

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(index)
        start, end = index * self.block, (index + 1) * self.block
        shard = int(np.searchsorted(self.starts, start, side="right")) - 1
        parts = []
        while start < end:
            offset = start - int(self.starts[shard])
            take = min(end - start, self.entries[shard].tokens - offset)
            parts.append(self.maps[shard][offset:offset + take])
            start += take
            shard += 1
        return np.concatenate(parts).astype(np.int64) if len(parts) > 1 else parts[0].astype(np.int64)


def open_sources(directory: Path, names: list[str], seq_len: int) -> list[PackedSource]:
    """The named sources of a finished store, in that order, as packed blocks of ``seq_len + 1``."""
    store = read_store(directory)
    missing = [name for name in names if name not in store["sources"]]
    if missing:
        raise BadInputError(f"{directory}: the token store has no source {', '.join(missing)} "
                            f"(it holds {', '.join(store['sources'])})")
    return [PackedSource(directory, [ShardEntry(**entry) for entry in store["sources"][name]["shards"]],
                         store["dtype"], seq_len) for name in names]
