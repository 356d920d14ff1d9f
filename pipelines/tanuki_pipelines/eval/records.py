"""Question files and append-only JSONL records that let a rerun do only what is missing."""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError

SHIPPED_QUESTIONS = Path(__file__).resolve().parent / "questions" / "ja_mt_bench.jsonl"


@dataclass(frozen=True)
class Question:
    question_id: str
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] | None = None


@dataclass
class Questions:
    items: list[Question] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)


def read_jsonl(path: Path) -> tuple[list[Any], int]:
    """Records of a JSONL file and how many lines were not JSON (e.g. a line cut by a crash). Lines
    end at ``\n`` only: a record written with ``ensure_ascii=False`` may hold U+2028 or U+0085 raw,
    which ``str.splitlines()`` would take for line ends and so drop the record as broken."""
    records: list[Any] = []
    broken = 0
    if not path.is_file():
        return records, 0
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            broken += 1
    return records, broken


def load_questions(path: Path | None, turns: int = 2) -> Questions:
    """MT-Bench ``question.jsonl`` records (``question_id``, ``category``, ``turns``, optional ``reference``)."""
    source = path or SHIPPED_QUESTIONS
    if not source.is_file():
        raise BadInputError(f"questions: no such file: {source}")
    records, broken = read_jsonl(source)
    questions = Questions()
    if broken:
        questions.dropped["not JSON"] += broken
    for record in records:
        if not isinstance(record, dict) or "question_id" not in record or not isinstance(record.get("category"), str):
            questions.dropped["missing question_id or category"] += 1
            continue
        asked = record.get("turns")
        if not isinstance(asked, list) or len(asked) < turns or not all(isinstance(t, str) and t for t in asked[:turns]):
            questions.dropped[f"fewer than {turns} turns"] += 1
            continue
        reference = record.get("reference")
        questions.items.append(Question(str(record["question_id"]), record["category"], tuple(asked[:turns]),
                                        tuple(map(str, reference)) if isinstance(reference, list) else None))
    return questions


def safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_") or "model"


class Journal:
    """An append-only JSONL file of records keyed by a tuple of their fields; threads may append."""

    def __init__(self, path: Path, key: tuple[str, ...]) -> None:
        self.path, self.key = path, key
        path.parent.mkdir(parents=True, exist_ok=True)
        records, self.broken = read_jsonl(path)
        self.records = {self._key(r): r for r in records if isinstance(r, dict) and all(k in r for k in key)}
        self._lock = threading.Lock()

    def _key(self, record: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(record[k]) for k in self.key)

    def has(self, *values: Any) -> bool:
        return tuple(map(str, values)) in self.records

    def get(self, *values: Any) -> dict[str, Any] | None:
        return self.records.get(tuple(map(str, values)))

    def record(self, *values: Any) -> dict[str, Any]:
        """The record of a key known to be there (``has``)."""
        return self.records[tuple(map(str, values))]

    def add(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
            self.records[self._key(record)] = record
