"""One JSON record a line (JSONL/NDJSON), as every stage and the arena write them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

LINE_BREAKS_JSON_KEEPS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
"""Characters ``json.dumps(ensure_ascii=False)`` leaves raw that ``str.splitlines()`` (and so
httpx's ``aiter_lines``) takes for line ends: escaped, a record is one line to every reader. (A
model's text may hold any of them.)"""


def json_line(record: Any) -> str:
    """One line: Japanese kept readable, every line break inside escaped."""
    text = json.dumps(record, ensure_ascii=False)
    for raw, escaped in LINE_BREAKS_JSON_KEEPS.items():
        text = text.replace(raw, escaped)
    return text + "\n"


def jsonl(records: Iterable[Any]) -> str:
    """Records as JSONL text."""
    return "".join(json_line(record) for record in records)
