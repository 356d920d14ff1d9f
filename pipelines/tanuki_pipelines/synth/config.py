"""Recipe model of the synthetic-data stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tanuki_pipelines.config import ConfigModel, DataSource, InputPath

REWRITE_STYLES = ["logical", "qa", "essay", "news", "report", "story", "summary", "letter", "review", "interview",
                  "instructions", "textbook", "dialogue", "blog", "speech", "manual", "guide", "recipe", "poem",
                  "presentation", "advertisement", "announcement", "fiction", "nonfiction", "conversation"]
"""The rewriting styles tanuki has prompts for (``tanuki_pipelines.synth.prompts.STYLES``)."""


class GeneratorModel(ConfigModel):
    """The LLM that writes the synthetic text, run by vLLM (engine ``vllm``)."""

    path: InputPath | None = None
    """HF checkpoint directory (set by the operator from ``spec.model`` when referenced)."""
    max_model_len: int = Field(default=4096, ge=128)
    """Context length vLLM reserves; a prompt longer than it is cut from the document's end."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """GPUs per vLLM engine."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Weights' dtype in vLLM (``auto``: the checkpoint's). On a CPU with bf16 instructions (AMX,
    AVX512-BF16), ``bfloat16`` generates ~2.4× faster than ``float32``."""
    enforce_eager: bool | None = None
    """vLLM's ``enforce_eager``: run the model without torch.compile and CUDA graphs. ``None``: eager
    on CPUs, where compiling adds ~30 s of start-up (it pays off on long runs: 1.35× on the
    synth benchmark), compiled on GPUs."""


class EndpointEngine(ConfigModel):
    """Any OpenAI-compatible endpoint as the generator (engine ``endpoint``)."""

    base_url: str
    """Base URL of the OpenAI-compatible API (``.../v1``): a ModelServer or a hosted model."""
    model: str
    """Model name sent in requests."""
    api_key_env: str | None = None
    """Environment variable holding the API key, or naming a file with it as ``<VAR>_FILE``."""
    concurrency: int = Field(default=8, ge=1)
    """Requests in flight at once."""


class RewriteConfig(ConfigModel):
    """Rewriting each human document (or a span of a long one) in sampled styles."""

    temperature: float = Field(default=0.1, ge=0)
    """Sampling temperature (the Tanuki code's)."""
    repetition_penalty: float = Field(default=1.2, gt=0)
    """vLLM's repetition penalty (the Tanuki code's)."""
    max_tokens: int = Field(default=2048, ge=1)
    """Longest rewrite."""
    span_min_chars: int = Field(default=400, ge=1)
    """A document longer than ``span_max_chars`` is rewritten from a random span at least this long."""
    span_max_chars: int = Field(default=2000, ge=1)
    """Longest span rewritten."""
    translate: bool = False
    """Append an English translation of each rewrite (one more generation)."""

    @model_validator(mode="after")
    def _span_order(self) -> RewriteConfig:
        if self.span_min_chars > self.span_max_chars:
            raise ValueError("span_min_chars must not exceed span_max_chars")
        return self


class Dialogues(ConfigModel):
    """Multi-turn reasoning dialogues from occupation × personality × reasoning-genre prompts."""

    count: int = Field(default=0, ge=0)
    """Dialogues to write (0 disables)."""
    turns: int = Field(default=2, ge=1)
    """User/assistant exchanges: the first question is written by the model in the persona, every
    later one is a critique request drawn from ``followups``."""
    personas: list[str] = Field(default_factory=list)
    """Occupations of the asking user; empty: the ~200 shipped with tanuki (or ``persona_file``'s)."""
    persona_file: InputPath | None = None
    """Persona-Hub-style JSONL (``{"persona": ...}`` per line) used instead of occupations."""
    personalities: list[str] = Field(default_factory=list)
    """How the user thinks and talks; empty: the ~100 shipped with tanuki."""
    tasks: list[str] = Field(default_factory=list)
    """Reasoning genres (deductive, inductive, abductive, quantitative, planning, …); empty: the shipped list."""
    followups: list[str] = Field(default_factory=list)
    """Critique requests for turns after the first; empty: the shipped list."""
    question_temperature: float = Field(default=0.7, ge=0)
    """Temperature of the model writing the user's first question."""
    question_top_k: int = Field(default=50, ge=0)
    """Top-k of the question (0: off)."""
    answer_temperature: float = Field(default=0.01, ge=0)
    """Temperature of the answers ("plan, then step by step")."""
    max_tokens: int = Field(default=1024, ge=1)
    """Longest question or answer."""


class Filters(ConfigModel):
    """Cleaning applied to generated text (and by ``tanuki synth filter`` to any JSONL), Tanuki's
    thresholds: ``tanuki curate``'s steps (language, length, repeated_phrase, punctuation,
    exact_dedup, near_dedup) with these settings."""

    languages: list[str] = Field(default_factory=lambda: ["ja"])
    """Keep a text when fastText gives one of these languages at least ``language_threshold``
    (empty: no language filter). A dialogue is judged on all its turns."""
    language_threshold: float = Field(default=0.07, ge=0, le=1)
    """Smallest fastText probability of a wanted language (Tanuki: P(ja) ≥ 0.07)."""
    min_chars: int = Field(default=50, ge=0)
    """Drop shorter texts."""
    max_repeated_phrase_chars: int = Field(default=100, ge=1)
    """Drop a text in which some phrase longer than this occurs twice (looping generations)."""
    max_words_per_punctuation: float = Field(default=40, gt=0)
    """Drop a text with more MeCab words per punctuation mark than this (run-on junk)."""
    exact_dedup: bool = True
    """Drop exact repeats (after whitespace normalisation)."""
    near_duplicate_threshold: float = Field(default=0.8, gt=0, lt=1)
    """Jaccard similarity of character shingles (MinHash, LSH bands) from which a text is a near
    duplicate of an earlier one."""
    minhash_permutations: int = Field(default=128, ge=16)
    """MinHash permutations (more: a sharper threshold, slower)."""
    shingle_chars: int = Field(default=5, ge=1)
    """Characters per shingle."""


class RayConfig(ConfigModel):
    """Where Ray runs the vLLM engines (engine ``vllm``)."""

    mode: Literal["auto", "process", "local", "cluster"] = "auto"
    """``process``: the one engine runs in the job's own process, no Ray (one machine, one engine:
    Ray's own processes cost a quarter of a 2-core node's throughput, measured); ``local``: an
    in-process Ray in one pod (``workers`` engines); ``cluster``: a KubeRay RayJob with GPU workers;
    ``auto``: ``process`` for one worker, else ``local``."""
    workers: int = Field(default=1, ge=1)
    """vLLM engine replicas (cluster mode: GPU worker pods)."""
    cpus_per_worker: float = Field(default=1, gt=0)
    """Ray CPUs each engine actor reserves (a CPU-only engine also takes a CPU placement bundle). On
    CPU this is a reservation only: the engine's threads come from ``threads_per_worker``."""
    threads_per_worker: int | None = Field(default=None, ge=1)
    """CPU engines: torch threads of each engine actor. Empty: the cores of the Ray node it runs on,
    shared evenly among the engines that node can hold (Ray itself would limit an actor to the CPUs it
    reserved, one by default, leaving the rest of the machine idle)."""
    start_timeout_seconds: int = Field(default=600, ge=10)
    """Fail when Ray cannot place the engines within this time (e.g. no GPU node), instead of hanging."""

    @model_validator(mode="after")
    def _one_engine_in_process(self) -> RayConfig:
        if self.mode == "process" and self.workers != 1:
            raise ValueError(f"workers: mode process runs one engine in the job's process, got {self.workers}; "
                             "use mode local (Ray in the pod) or cluster for more")
        return self


class SynthConfig(ConfigModel):
    """Rewrite human documents in many styles and write persona dialogues, then filter and deduplicate."""

    documents: list[DataSource] = Field(default_factory=list)
    """Human documents to rewrite (JSONL ``{"text", "id"?...}`` or plain text)."""
    max_documents: int | None = Field(default=None, ge=1)
    """Rewrite only the first this many documents (a smoke run)."""
    styles: list[str] = Field(default_factory=lambda: list(REWRITE_STYLES))
    """Rewriting styles to sample from (all ~25 by default; see ``REWRITE_STYLES``)."""
    rewrites_per_document: int = Field(default=2, ge=0)
    """Styles sampled per document (without repeats; capped at the number of styles)."""
    engine: Literal["vllm", "endpoint"] = "vllm"
    """``vllm``: vLLM engines in Ray Data actors (one pod or a KubeRay cluster); ``endpoint``: ``endpoint``."""
    generator: GeneratorModel = Field(default_factory=GeneratorModel)
    """The LLM (engine ``vllm``)."""
    endpoint: EndpointEngine | None = None
    """The OpenAI-compatible generator (engine ``endpoint``)."""
    rewrite: RewriteConfig = Field(default_factory=RewriteConfig)
    """Rewriting settings."""
    dialogues: Dialogues = Field(default_factory=Dialogues)
    """Persona dialogues."""
    filters: Filters = Field(default_factory=Filters)
    """Language, quality and duplicate filters."""
    ray: RayConfig = Field(default_factory=RayConfig)
    """Ray settings."""
    shard_size: int = Field(default=64, ge=1)
    """Work items (rewrites, dialogues) per shard: a shard is generated and written as a unit, and a
    rerun skips the shards already written."""
    seed: int = 0
    """Seeds spans, style and persona sampling."""

    @field_validator("styles")
    @classmethod
    def _known_styles(cls, styles: list[str]) -> list[str]:
        unknown = sorted(set(styles) - set(REWRITE_STYLES))
        if unknown:
            raise ValueError(f"unknown styles {unknown}; known: {', '.join(REWRITE_STYLES)}")
        return styles

    @model_validator(mode="after")
    def _engine_settings(self) -> SynthConfig:
        if self.engine == "endpoint" and self.endpoint is None:
            raise ValueError("endpoint: required with engine endpoint")
        return self
