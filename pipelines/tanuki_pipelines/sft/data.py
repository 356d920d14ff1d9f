"""Chat data for SFT: ``{"messages": [{"role", "content"}, ...]}`` JSONL, checked line by line.

A malformed conversation (unknown role, empty content, no assistant turn, not JSON) is counted with
its line number and left out; only a file with nothing usable left is an error (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.synth.plan import Problems, read_jsonl_records

ROLES = ("system", "user", "assistant")


def conversation_problem(record: dict[str, Any]) -> str | None:
    """Why a record is not a usable conversation, or None (pure)."""
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return "no messages list"
    for message in messages:
        if not isinstance(message, dict):
            return "a message is not an object"
        if message.get("role") not in ROLES:
            return f"unknown role {message.get('role')!r}"
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            return "empty content"
    if not any(message["role"] == "assistant" for message in messages):
        return "no assistant turn"
    return None


def read_conversations(path: Path) -> tuple[list[dict[str, Any]], Problems]:
    """The usable conversations (only their ``messages``) and what was left out."""
    problems = Problems()
    usable = []
    for number, record in read_jsonl_records(path, problems):
        problem = conversation_problem(record)
        if problem:
            problems.add(problem, f"{path.name}:{number}")
        else:
            usable.append({"messages": [{"role": m["role"], "content": m["content"]} for m in record["messages"]]})
    if not usable:
        raise BadInputError(f"dataset: {path} has no usable conversation ({dict(problems.counts) or 'empty'})")
    return usable, problems
