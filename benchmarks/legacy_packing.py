"""Pretraining's packing before the token store, kept as the baseline the data benchmark measures
against (copied from ``pipelines/tanuki_pipelines/pretrain/data.py`` at 8f045fa): every document of a
JSONL source read into a list, tokenized in one call, joined with EOS and cut into an in-memory
``(n, seq_len + 1)`` ``int32`` array, saved as ``.npy`` and memory-mapped by the trainer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def read_documents(path: Path, text_field: str = "text") -> list[str]:
    documents = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                text = json.loads(line)[text_field]
                if text.strip():
                    documents.append(text)
    return documents


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


def tokenize_source(path: Path, tokenizer_dir: Path, seq_len: int) -> np.ndarray:
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    documents = read_documents(path)
    token_lists = tokenizer(documents, add_special_tokens=False)["input_ids"] if documents else []
    return pack(token_lists, seq_len, tokenizer.eos_token_id)


def prepare_npy(path: Path, tokenizer_dir: Path, seq_len: int, target: Path) -> Path:
    np.save(target, tokenize_source(path, tokenizer_dir, seq_len))
    return target
