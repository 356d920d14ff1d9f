"""Baseline for ``benchmarks/curate.py``: ``tanuki synth filter`` as it was before it ran on the
curation steps (kept as the issue asks, so the comparison does not rot): one process, the records
in memory, an in-memory MinHash LSH (``datasketch``) queried and filled document by document.

The per-text checks are the ones ``tanuki curate`` runs (``tanuki_pipelines.curate.steps``), so the
comparison measures the engine, not the checks.

    .venv/bin/python benchmarks/legacy_synth_filter.py --input F [--input F ...] --output-dir D
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tanuki_pipelines.curate.steps import repeated_phrase, run_on, wrong_language

WHITESPACE = re.compile(r"\s+")
LANGUAGES, LANGUAGE_THRESHOLD, MIN_CHARS = ["ja"], 0.07, 50
MAX_REPEATED_PHRASE_CHARS, MAX_WORDS_PER_PUNCTUATION = 100, 40
NEAR_DUPLICATE_THRESHOLD, PERMUTATIONS, SHINGLE_CHARS = 0.8, 128, 5
"""Today's ``Filters`` defaults (Tanuki's thresholds)."""


def record_text(record: dict[str, Any]) -> str | None:
    if isinstance(record.get("text"), str):
        return record["text"]
    messages = record.get("messages")
    if isinstance(messages, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        return "\n".join(m["content"] for m in messages)
    return None


def text_problem(record: dict[str, Any]) -> tuple[str, str] | None:
    text = record_text(record)
    if text is None:
        return "malformed", "no string `text` and no `messages` with string contents"
    length = len(text.strip())
    checks = (("too_short", lambda: f"too short: {length}" if length < MIN_CHARS else None),
              ("language", lambda: wrong_language(text, LANGUAGES, LANGUAGE_THRESHOLD)),
              ("repeated_phrase", lambda: repeated_phrase(text, MAX_REPEATED_PHRASE_CHARS)),
              ("run_on", lambda: run_on(text, MAX_WORDS_PER_PUNCTUATION)))
    for reason, check in checks:
        detail = check()
        if detail:
            return reason, detail
    return None


def _shingles(text: str, width: int) -> set[bytes]:
    flat = WHITESPACE.sub(" ", text).strip()
    return {flat[i:i + width].encode() for i in range(max(len(flat) - width + 1, 1))}


def filter_records(records: Iterable[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], tuple[str, str] | None]]:
    """Each record with the reason it is dropped (None: kept), in input order; the first of a
    duplicate group is kept."""
    from datasketch import MinHash, MinHashLSH

    exact: dict[str, str] = {}
    names: list[str] = []
    index = MinHashLSH(threshold=NEAR_DUPLICATE_THRESHOLD, num_perm=PERMUTATIONS)
    for number, record in enumerate(records):
        problem = text_problem(record)
        if problem is None:
            text = record_text(record) or ""
            key = hashlib.sha256(WHITESPACE.sub(" ", text).strip().encode()).hexdigest()
            name = str(record.get("id", number))
            if key in exact:
                problem = ("exact_duplicate", f"same text as {exact[key]}")
            else:
                signature = MinHash(num_perm=PERMUTATIONS, seed=1)
                signature.update_batch(list(_shingles(text, SHINGLE_CHARS)))
                similar = index.query(signature)
                if similar:
                    problem = ("near_duplicate", f"near duplicate of {names[min(similar)]}")
                else:
                    exact.setdefault(key, name)
                    index.insert(len(names), signature)
                    names.append(name)
        yield record, problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, action="append", required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    records = [json.loads(line) for path in args.input for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    args.output_dir.mkdir(parents=True, exist_ok=True)
    reasons: Counter[str] = Counter()
    with (args.output_dir / "kept.jsonl").open("w", encoding="utf-8") as kept, \
            (args.output_dir / "dropped.jsonl").open("w", encoding="utf-8") as dropped:
        for record, problem in filter_records(records):
            if problem is None:
                kept.write(json.dumps(record, ensure_ascii=False) + "\n")
            else:
                reasons[problem[0]] += 1
                dropped.write(json.dumps({**record, "drop_reason": problem[0], "drop_detail": problem[1]},
                                         ensure_ascii=False) + "\n")
    print(json.dumps({"input": len(records), "dropped": dict(reasons)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
