"""``tanuki synth``'s filters are ``tanuki curate``'s steps and engine run on the generated records
(one implementation); ``Filters`` (Tanuki's thresholds) says which steps and settings.

A record's text is its ``text``, or for a dialogue (``messages``) its turns, one per line. Two checks
are about a record's shape, not its text, so they are made here: a record with neither is
``malformed``; a dialogue without an assistant turn is ``incomplete_dialogue``. The rest are the
curation steps ``language``, ``length``, ``repeated_phrase``, ``punctuation``, ``exact_dedup`` and
``near_dedup``; of a group of duplicates the first record in input order is kept (curation keeps
the smallest file and line, and the records are staged in input order).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tanuki_pipelines.config import DataSource
from tanuki_pipelines.curate.config import (
    CurateConfig,
    CurateOutput,
    ExactDedup,
    Language,
    Length,
    NearDedup,
    Punctuation,
    RepeatedPhrase,
    Step,
)
from tanuki_pipelines.synth.config import Filters

CHUNK_RECORDS = 10_000
"""Records per staged file: each file is a curation task, so ``workers`` processes share the work."""
Problem = tuple[str, str] | None
"""(step, detail) of why a record is dropped, or None: kept."""


def record_text(record: dict[str, Any]) -> str | None:
    """The text a record is judged by (None: it has neither ``text`` nor ``messages``)."""
    if isinstance(record.get("text"), str):
        return record["text"]
    messages = record.get("messages")
    if isinstance(messages, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        return "\n".join(m["content"] for m in messages)
    return None


def shape_problem(record: dict[str, Any]) -> Problem:
    """``malformed``, ``incomplete_dialogue`` or an empty text (``length``: curation skips blank
    documents, so they are never staged), or None."""
    text = record_text(record)
    if text is None:
        return "malformed", "no string `text` and no `messages` with string contents"
    if not text.strip():
        return "length", "empty text"
    messages = record.get("messages")
    if isinstance(messages, list) and not isinstance(record.get("text"), str) and not any(
            m.get("role") == "assistant" for m in messages):
        return "incomplete_dialogue", "no assistant turn"
    return None


def curation_steps(filters: Filters) -> list[Step]:
    """The curation steps ``filters`` stands for, in order."""
    steps: list[Step] = []
    if filters.languages:
        steps.append(Language(languages=filters.languages, threshold=filters.language_threshold))
    steps += [Length(min_chars=filters.min_chars), RepeatedPhrase(max_chars=filters.max_repeated_phrase_chars),
              Punctuation(max_words_per_mark=filters.max_words_per_punctuation)]
    if filters.exact_dedup:
        steps.append(ExactDedup())
    steps.append(NearDedup(threshold=filters.near_duplicate_threshold, shingle_chars=filters.shingle_chars,
                           num_perm=filters.minhash_permutations))
    return steps


def filter_records(records: list[dict[str, Any]], filters: Filters, work: Path,
                   workers: int = 1) -> list[tuple[dict[str, Any], Problem]]:
    """Each record with why it is dropped (None: kept), in input order. ``work`` is this run's
    curation directory (staged records, curation state): emptied first."""
    from tanuki_pipelines.curate.run import REMOVED, curate

    shutil.rmtree(work, ignore_errors=True)
    staged = work / "records"
    staged.mkdir(parents=True)
    problems: list[Problem] = [shape_problem(record) for record in records]
    judged = [number for number, problem in enumerate(problems) if problem is None]
    for chunk, start in enumerate(range(0, len(judged), CHUNK_RECORDS)):
        with (staged / f"{chunk:05d}.jsonl").open("w", encoding="utf-8") as handle:
            for number in judged[start:start + CHUNK_RECORDS]:
                handle.write(json.dumps({"text": record_text(records[number])}, ensure_ascii=False) + "\n")
    if judged:
        config = CurateConfig(sources=[DataSource(name="synth", path=staged, format="jsonl", on_bad_record="error")],
                              steps=curation_steps(filters), output=CurateOutput(keep_removed=1.0))
        curation = work / "curation"
        curate(config, curation, workers)

        def record_number(file: int, position: int) -> int:  # staged files hold no blank or bad lines
            return judged[file * CHUNK_RECORDS + position]

        for line in (curation / REMOVED / "sample.jsonl").read_text(encoding="utf-8").splitlines():
            removed = json.loads(line)
            path, line_number = removed["where"].rsplit(":", 1)
            number = record_number(int(Path(path).name.split(".")[0]), int(line_number) - 1)
            detail = removed["reason"]
            if "duplicate_of" in removed:
                keeper = record_number(*removed["duplicate_of"])
                detail = f"{removed['step'].split('_')[0]} duplicate of {records[keeper].get('id', keeper)}"
            problems[number] = (removed["step"], detail)
    return list(zip(records, problems, strict=True))
