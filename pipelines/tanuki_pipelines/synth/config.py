"""Recipe model of the synthetic-data stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tanuki_pipelines.config import ConfigModel, DataSource, InputPath

REWRITE_STYLES = ["qa", "essay", "news", "report", "story", "summary", "letter", "interview"]


class GeneratorModel(ConfigModel):
    """The LLM that writes the synthetic text, run by vLLM."""

    path: InputPath | None = None
    """HF checkpoint directory (set by the operator from ``spec.model`` when referenced)."""
    max_model_len: int = Field(default=4096, ge=128)
    """Context length vLLM reserves."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """GPUs per vLLM engine."""
    temperature: float = Field(default=0.7, ge=0)
    """Sampling temperature."""
    top_p: float = Field(default=0.95, gt=0, le=1)
    """Nucleus sampling threshold."""
    max_tokens: int = Field(default=1024, ge=1)
    """Longest generated text per request."""


class Dialogues(ConfigModel):
    """Multi-turn reasoning dialogues from persona × personality × task prompts."""

    count: int = Field(default=0, ge=0)
    """Dialogues to write (0 disables)."""
    turns: int = Field(default=3, ge=1)
    """User/assistant exchanges per dialogue."""
    personas: list[str] = Field(default_factory=lambda: ["学生", "会社員", "研究者", "料理人"])
    """Who the user is."""
    personalities: list[str] = Field(default_factory=lambda: ["丁寧", "好奇心旺盛", "せっかち"])
    """How the user talks."""
    tasks: list[str] = Field(default_factory=lambda: ["計算", "要約", "説明", "計画"])
    """What the user wants done."""


class Filters(ConfigModel):
    """Cleaning applied to generated text."""

    languages: list[Literal["ja", "en"]] = Field(default_factory=lambda: ["ja", "en"])
    """Keep only documents detected as one of these languages."""
    min_chars: int = Field(default=50, ge=0)
    """Drop shorter outputs."""
    near_duplicate_threshold: float = Field(default=0.8, gt=0, le=1)
    """MinHash Jaccard similarity above which a document is a near duplicate."""


class RayConfig(ConfigModel):
    """Where Ray runs the batch inference."""

    mode: Literal["local", "cluster"] = "local"
    """``local``: in-process Ray in one pod; ``cluster``: a KubeRay RayJob with GPU workers."""
    workers: int = Field(default=1, ge=1)
    """vLLM engine replicas (cluster mode: GPU worker pods)."""
    batch_size: int = Field(default=16, ge=1)
    """Prompts per Ray Data batch."""


class SynthConfig(ConfigModel):
    """Rewrite human documents in many styles and write dialogues, then filter and deduplicate."""

    documents: list[DataSource] = Field(default_factory=list)
    """Human documents to rewrite."""
    styles: list[str] = Field(default_factory=lambda: list(REWRITE_STYLES))
    """Rewriting styles (Q&A, essay, news article, report, story, summary, letter, interview, …)."""
    rewrites_per_document: int = Field(default=2, ge=0)
    """Styles sampled per document."""
    generator: GeneratorModel = Field(default_factory=GeneratorModel)
    """The LLM used."""
    dialogues: Dialogues = Field(default_factory=Dialogues)
    """Persona dialogues."""
    filters: Filters = Field(default_factory=Filters)
    """Language filter and near-duplicate removal."""
    ray: RayConfig = Field(default_factory=RayConfig)
    """Ray Data settings."""
    seed: int = 0
    """Seeds style and persona sampling."""
