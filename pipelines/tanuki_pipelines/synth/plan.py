"""What ``tanuki synth`` will generate: documents read with their problems counted, and the work
items (one rewrite of one document in one style, or one dialogue) cut into shards (pure apart
from reading the input files).

Every choice is seeded by the recipe's seed and the item's own id, so a rerun plans exactly the
same items in the same shards, which is what lets it skip the shards already written.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import DataSource
from tanuki_pipelines.corpus_io import Problems
from tanuki_pipelines.synth.config import SynthConfig
from tanuki_pipelines.synth.prompts import shipped


@dataclass(frozen=True)
class Document:
    id: str
    """The record's ``id`` when it has one, else ``<source>:<line>``."""
    text: str


def read_jsonl_records(path: Path, problems: Problems) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of each usable line; empty and malformed lines are counted, not fatal."""
    if not path.is_file():
        raise BadInputError(f"{path}: file not found")
    found = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                problems.add("empty line", f"{path.name}:{number}")
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                problems.add("not JSON", f"{path.name}:{number}")
                continue
            if not isinstance(record, dict):
                problems.add("not a JSON object", f"{path.name}:{number}")
                continue
            found.append((number, record))
    return found


def read_documents(sources: list[DataSource], problems: Problems) -> list[Document]:
    """Every document of the sources (any format ``corpus_io`` reads); bad records are counted in
    ``problems`` unless a source says ``on_bad_record: error``."""
    from tanuki_pipelines.corpus_io import iter_documents

    documents = []
    for source in sources:
        if source.path is None:
            raise BadInputError(f"documents[{source.name}]: path is not set")
        paragraphs = 0
        for found in iter_documents(source, problems, default="skip"):
            if found.record is None:  # plain text: numbered by paragraph within the source
                paragraphs += 1
                identity = f"{source.name}:{paragraphs}"
            else:
                identity = str(found.record.get("id", f"{source.name}:{found.where.rsplit(':', 1)[1]}"))
            documents.append(Document(identity, found.text.strip()))
    if sources and not documents:
        names = ", ".join(str(source.path) for source in sources)
        raise BadInputError(f"documents: {names} yielded no documents ({dict(problems.counts) or 'all empty'})")
    return documents


def personas(config: SynthConfig, problems: Problems) -> list[str]:
    dialogues = config.dialogues
    if dialogues.persona_file is not None:
        found = [str(record["persona"]).strip() for _, record in read_jsonl_records(dialogues.persona_file, problems)
                 if str(record.get("persona", "")).strip()]
        if not found:
            raise BadInputError(f"dialogues.persona_file: {dialogues.persona_file} has no {{\"persona\"}} records")
        return found
    return list(dialogues.personas or shipped("occupations"))


def span(text: str, rng: random.Random, shortest: int, longest: int) -> str:
    """The whole text, or a random span of ``shortest``–``longest`` characters of a longer one."""
    if len(text) <= longest:
        return text
    length = rng.randint(shortest, longest)
    start = rng.randint(0, len(text) - length)
    return text[start:start + length]


def work_items(config: SynthConfig, documents: list[Document], persona_list: list[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    per_document = min(config.rewrites_per_document, len(config.styles))
    for document in documents[:config.max_documents]:
        rng = random.Random(f"{config.seed}:rewrite:{document.id}")
        text = span(document.text, rng, config.rewrite.span_min_chars, config.rewrite.span_max_chars)
        for style in rng.sample(config.styles, per_document):
            items.append({"id": f"rewrite:{document.id}:{style}", "kind": "rewrite", "style": style,
                          "source_id": document.id, "source_chars": len(text), "text": text})
    dialogues = config.dialogues
    personalities = list(dialogues.personalities or shipped("personalities"))
    tasks = list(dialogues.tasks or shipped("tasks"))
    followups = list(dialogues.followups or shipped("followups"))
    for index in range(dialogues.count):
        rng = random.Random(f"{config.seed}:dialogue:{index}")
        items.append({"id": f"dialogue:{index}", "kind": "dialogue", "persona": rng.choice(persona_list),
                      "personality": rng.choice(personalities), "task": rng.choice(tasks),
                      "followups": [rng.choice(followups) for _ in range(dialogues.turns - 1)]})
    return items


def shards(items: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [items[start:start + size] for start in range(0, len(items), size)]
