"""Small shared helpers for the debug corpus generator.

Everything here is deterministic: randomness always comes from an explicit
``random.Random`` passed in by the caller, never from the global generator,
and nothing iterates over sets or hash-ordered containers.
"""

from __future__ import annotations

import datetime as _dt
import random
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SEEDS_DIR = Path(__file__).resolve().parent / "seeds"

JA_WEEKDAYS = ("月", "火", "水", "木", "金", "土", "日")
EN_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EN_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)


def sub_rng(seed: int, name: str) -> random.Random:
    """An independent, reproducible stream for one part of the corpus.

    String seeds are hashed with SHA-512 by ``random.Random`` (version 2
    seeding), so this does not depend on ``PYTHONHASHSEED``. Giving every
    generator its own stream means editing one template table does not
    reshuffle the output of all the others.
    """
    return random.Random(f"tanuki-debug-corpus:{seed}:{name}")


def load_seed_paragraphs(lang: str) -> list[str]:
    """Hand-written seed paragraphs for ``lang`` ("ja" or "en"), in file order."""
    text = (SEEDS_DIR / f"{lang}.txt").read_text(encoding="utf-8")
    return [p.strip() for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


def pick(rng: random.Random, items: Sequence[T]) -> T:
    return items[rng.randrange(len(items))]


def pick_n(rng: random.Random, items: Sequence[T], n: int) -> list[T]:
    """``n`` distinct items in random order (``n`` is clamped to the pool size)."""
    return rng.sample(list(items), min(n, len(items)))


def random_date(rng: random.Random, first_year: int = 2019, last_year: int = 2026) -> _dt.date:
    start = _dt.date(first_year, 1, 1).toordinal()
    end = _dt.date(last_year, 12, 31).toordinal()
    return _dt.date.fromordinal(rng.randint(start, end))


def ja_date(d: _dt.date, with_year: bool = True) -> str:
    body = f"{d.month}月{d.day}日（{JA_WEEKDAYS[d.weekday()]}）"
    return f"{d.year}年{body}" if with_year else body


def en_date(d: _dt.date, with_year: bool = True) -> str:
    body = f"{EN_WEEKDAYS[d.weekday()]}, {EN_MONTHS[d.month - 1]} {d.day}"
    return f"{body}, {d.year}" if with_year else body


def hhmm(minutes: int) -> str:
    """Minutes after midnight -> ``HH:MM`` (wraps past midnight)."""
    minutes %= 24 * 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def season_of(month: int) -> str:
    return ("winter", "winter", "spring", "spring", "spring", "summer",
            "summer", "summer", "autumn", "autumn", "autumn", "winter")[month - 1]


def round_to(value: float, step: int) -> int:
    return max(step, int(round(value / step)) * step)


def halves(value: float) -> Fraction:
    """Round to the nearest 1/2, never below 1/2 (for counts and spoonfuls)."""
    return max(Fraction(1, 2), Fraction(round(value * 2), 2))


def fraction_text(value: Fraction, joiner: str) -> str:
    """3/2 -> "1{joiner}1/2", 1/2 -> "1/2", 2 -> "2"."""
    whole, rest = divmod(value, 1)
    if rest == 0:
        return str(int(whole))
    part = f"{rest.numerator}/{rest.denominator}"
    return f"{int(whole)}{joiner}{part}" if whole else part


_JA_SENTENCE_END = re.compile(r"(?<=[。！？!?])(?![」』）)])")
_EN_SENTENCE_END = re.compile(r"(?<=[.!?\"])\s+(?=[A-Z\"])")
_EN_ABBREVIATIONS = ("Mr.", "Mrs.", "Ms.", "Dr.", "St.", "p.m.", "a.m.")


def split_sentences(paragraph: str, lang: str) -> list[str]:
    """Naive sentence splitter, good enough for our own seed prose."""
    if lang == "ja":
        return [s.strip() for s in _JA_SENTENCE_END.split(paragraph) if s.strip()]
    pieces = [s.strip() for s in _EN_SENTENCE_END.split(paragraph) if s.strip()]
    merged: list[str] = []
    for piece in pieces:
        if merged and merged[-1].endswith(_EN_ABBREVIATIONS):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return merged
