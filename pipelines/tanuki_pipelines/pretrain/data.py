"""Tokenize and pack each data source into fixed-length sequences, cached on disk.

Each source becomes an ``int32`` array of shape ``(n, seq_len + 1)``: documents joined with the
tokenizer's EOS and cut into consecutive blocks (inputs are ``[:-1]``, labels ``[1:]``). The cache key covers the file,
the tokenizer and the sequence length, so a resumed run reuses it and a changed input rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tanuki_pipelines.config import DataSource
from tanuki_pipelines.corpus_io import read_nonempty
from tanuki_pipelines.errors import BadInputError
from tanuki_pipelines.tokenizer.special import load_tokenizer, require_eos, special_ids
from tanuki_pipelines.tokenizer.train import HF_TOKENIZER_FILES


def cache_key(source: DataSource, tokenizer_dir: Path, seq_len: int) -> str:
    stat = source.path.stat()
    digest = hashlib.sha256()
    for name in HF_TOKENIZER_FILES:  # the tokenizer's own files: ids and special tokens
        if (tokenizer_dir / name).is_file():
            digest.update(name.encode() + (tokenizer_dir / name).read_bytes())
    for part in (str(source.path), stat.st_size, stat.st_mtime_ns, source.text_field,
                 source.resolved_format(), seq_len):
        digest.update(str(part).encode())
    return digest.hexdigest()[:16]


def pack(token_lists: list[list[int]], seq_len: int, eos_id: int) -> np.ndarray:
    """Join documents with EOS and cut into ``(n, seq_len + 1)`` blocks; the remainder is dropped."""
    total = sum(len(tokens) + 1 for tokens in token_lists)
    stream = np.empty(total, dtype=np.int32)
    position = 0
    for tokens in token_lists:
        stream[position : position + len(tokens)] = tokens
        stream[position + len(tokens)] = eos_id
        position += len(tokens) + 1
    block = seq_len + 1
    count = total // block
    return stream[: count * block].reshape(count, block)


def tokenize_source(source: DataSource, tokenizer_dir: Path, seq_len: int) -> np.ndarray:
    tokenizer = load_tokenizer(tokenizer_dir, "tokenizer.path")
    eos = require_eos(special_ids(tokenizer), "tokenizer.path", tokenizer_dir, "pretraining joins documents with it")
    documents = read_nonempty(source)
    token_lists = tokenizer(documents, add_special_tokens=False)["input_ids"] if documents else []
    packed = pack(token_lists, seq_len, eos)
    if len(packed) == 0:
        tokens = sum(len(tokens) + 1 for tokens in token_lists)
        raise BadInputError(
            f"data source {source.name!r}: {source.path} has {tokens} tokens, fewer than one "
            f"training sequence (train.seq_len + 1 = {seq_len + 1})"
        )
    return packed


def prepare_source(source: DataSource, tokenizer_dir: Path, seq_len: int, cache_dir: Path) -> Path:
    """Build (or reuse) the packed array of ``source``; returns its ``.npy`` path."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{source.name}-{cache_key(source, tokenizer_dir, seq_len)}.npy"
    if target.exists():
        return target
    packed = tokenize_source(source, tokenizer_dir, seq_len)
    tmp = target.with_suffix(".tmp.npy")
    np.save(tmp, packed)
    tmp.replace(target)
    return target


def prepare_all(sources: list[DataSource], tokenizer_dir: Path, seq_len: int, cache_dir: Path) -> list[Path]:
    paths = [prepare_source(source, tokenizer_dir, seq_len, cache_dir) for source in sources]
    manifest = {source.name: str(path) for source, path in zip(sources, paths)}
    (cache_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return paths


def load_packed(paths: list[Path]) -> list[np.ndarray]:
    return [np.load(path, mmap_mode="r") for path in paths]
