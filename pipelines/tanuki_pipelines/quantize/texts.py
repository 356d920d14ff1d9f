"""Calibration and held-out texts: read from a JSONL file or an upstream job's dataset, split (seeded)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError

Render = Callable[[list[dict[str, str]]], str]
"""Chat messages → text (the tokenizer's chat template)."""


def dataset_files(path: Path) -> list[Path]:
    """The JSONL files a path names: itself, or in a job's output directory the ``dataset`` its
    ``outputs.json`` names, else every ``*.jsonl`` in it."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise BadInputError(f"calibration.path: {path} does not exist")
    outputs = path / "outputs.json"
    if outputs.is_file():
        named = json.loads(outputs.read_text(encoding="utf-8")).get("dataset")
        if named and Path(named).is_file():
            return [Path(named)]
    files = sorted(path.rglob("*.jsonl"))
    if not files:
        raise BadInputError(f"calibration.path: {path} holds no outputs.json dataset and no *.jsonl file")
    return files


def record_text(record: Any, render: Render) -> str | None:
    """``text``, or ``messages`` rendered with the chat template; None for anything else."""
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("text"), str):
        return record["text"]
    if isinstance(record.get("messages"), list):
        return render(record["messages"])
    return None


def read_texts(path: Path, render: Render) -> list[str]:
    texts = []
    for file in dataset_files(path):
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    text = record_text(json.loads(line), render)
                except json.JSONDecodeError as exc:
                    raise BadInputError(f"calibration.path: {file}:{number} is not JSON: {exc}") from None
                if text and text.strip():
                    texts.append(text)
    if len(texts) < 2:
        raise BadInputError(f"calibration.path: {path} has {len(texts)} usable texts (records with `text` or "
                            "`messages`); the gate needs held-out texts besides the calibration ones")
    return texts


def split_texts(texts: list[str], num_calibration: int, num_held_out: int, seed: int) -> tuple[list[str], list[str]]:
    """(calibration, held-out), disjoint, drawn in a seeded order; at most half the texts are held out."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    held = min(num_held_out, len(texts) // 2)
    return [texts[i] for i in order[held:held + num_calibration]], [texts[i] for i in order[:held]]
