"""Reading documents from corpus files (JSONL or plain text), shared by the tokenizer and pretrain."""

from __future__ import annotations

import json
from collections.abc import Iterator

from tanuki_pipelines.config import DataSource
from tanuki_pipelines.errors import BadInputError


def iter_documents(source: DataSource) -> Iterator[str]:
    """Yield the non-empty documents of a source.

    JSONL: one document per line (``source.text_field``). Plain text: documents are separated by
    blank lines, so a paragraph keeps its inner newlines.
    """
    if source.path is None:
        raise BadInputError(f"data source {source.name!r}: path is not set")
    if not source.path.is_file():
        raise BadInputError(f"data source {source.name!r}: file not found: {source.path}")
    if source.resolved_format() == "jsonl":
        yield from _iter_jsonl(source)
    else:
        yield from _iter_paragraphs(source)


def _iter_jsonl(source: DataSource) -> Iterator[str]:
    with source.path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BadInputError(f"{source.path}:{line_number}: not valid JSON: {exc.msg}") from None
            text = record.get(source.text_field) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise BadInputError(
                    f"{source.path}:{line_number}: expected an object with a string "
                    f"{source.text_field!r} field"
                )
            if text.strip():
                yield text


def _iter_paragraphs(source: DataSource) -> Iterator[str]:
    paragraph: list[str] = []
    with source.path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                paragraph.append(line.rstrip("\n"))
            elif paragraph:
                yield "\n".join(paragraph)
                paragraph = []
    if paragraph:
        yield "\n".join(paragraph)


def read_nonempty(source: DataSource) -> list[str]:
    """All documents of a source; an empty corpus is an input error naming the file."""
    documents = list(iter_documents(source))
    if not documents:
        raise BadInputError(f"data source {source.name!r}: corpus is empty: {source.path}")
    return documents
