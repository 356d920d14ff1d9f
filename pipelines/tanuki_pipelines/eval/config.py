"""Recipe model of the evaluation stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tanuki_pipelines.config import ConfigModel, InputPath
from tanuki_pipelines.votes.codes import EVALUATIONS, Winner

WINNER_VALUES = ("model_a", "model_b", "tie", "tie (bothbad)")


class JudgeEndpoint(ConfigModel):
    """An OpenAI-compatible endpoint used as the judge."""

    base_url: str = "http://judge/v1"
    """Base URL of the OpenAI-compatible API."""
    model: str = "judge"
    """Model name sent in requests."""
    api_key_env: str = "JUDGE_API_KEY"
    """Environment variable holding the API key, or naming a file with it as ``<VAR>_FILE`` (how the
    operator passes a Secret)."""
    constrain_verdict: bool = False
    """Ask a vLLM judge to end every answer in a readable verdict (vLLM structured outputs, a
    regular expression): for small judges that drift; other servers ignore or refuse it."""
    verdict_reason_chars: int = Field(default=300, ge=0)
    """With ``constrain_verdict``: the most characters of reasoning before the verdict."""


class Contestant(ConfigModel):
    """A model under test, behind an OpenAI-compatible API."""

    name: str | None = None
    """Its name in the leaderboard (default: ``model``)."""
    base_url: str
    """Base URL of the OpenAI-compatible API (``.../v1``)."""
    model: str
    """Model name sent in requests (the server's served model name)."""
    api_key_env: str | None = None
    """Environment variable holding its API key, or naming a file with it as ``<VAR>_FILE``."""
    tokenizer: str | None = None
    """``harness`` only: the served checkpoint's tokenizer (a local directory or hub id) that
    lm-evaluation-harness counts tokens with; empty: the server's own ``/tokenize`` and
    ``/tokenizer_info`` (vLLM started with ``--enable-tokenizer-info-endpoint``)."""

    @property
    def label(self) -> str:
        return self.name or self.model


class GradeConfig(ConfigModel):
    """MT-Bench-style single-answer grading: two-turn questions, each answer scored 1–10 by the judge."""

    questions: InputPath | None = None
    """Questions in MT-Bench's ``question.jsonl`` format; empty: the Japanese set shipped with tanuki."""
    max_tokens: int = Field(default=1024, ge=1)
    """Longest answer requested from a model under test."""
    temperatures: dict[str, float] = Field(default_factory=lambda: {
        "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0, "reasoning": 0.0,
        "stem": 0.1, "humanities": 0.1})
    """Answer temperature per category (MT-Bench's); other categories: 0.7."""
    judge_max_tokens: int = Field(default=1024, ge=16)
    """Longest judgment requested from the judge."""
    parallel: int = Field(default=4, ge=1)
    """Requests in flight at once."""


class ArenaConfig(ConfigModel):
    """Battles between the targets on shared prompts, judged in both orders."""

    prompts: InputPath | None = None
    """Prompts: JSONL of ``{"prompt"}`` or MT-Bench questions (first turns); empty: the shipped questions."""
    max_prompts: int | None = Field(default=None, ge=1)
    """Use at most this many prompts (seeded choice)."""
    max_tokens: int = Field(default=512, ge=1)
    """Longest answer requested from a model."""
    temperature: float = Field(default=0.7, ge=0)
    """Answer temperature."""
    battles: list[InputPath] = Field(default_factory=list)
    """More battle logs in FastChat's format to rate together with these (e.g. a human-voting arena's)."""
    votes: InputPath | None = None
    """The Tanuki arena's vote records (``question``, ``answer_1``, ``answer_2``, ``model_1``, ``model_2``,
    ``evaluation``, ``created_time``) to import: an old arena's, or ``tanuki arena``'s export
    (``GET /api/votes``)."""
    votes_database: str | None = None
    """The database URL of a ``tanuki arena`` whose votes to import (as its export would give them)."""
    vote_codes: dict[str, Winner] = Field(
        default_factory=lambda: dict(EVALUATIONS))
    """``evaluation`` value → winner (``model_a`` is ``model_1``). Default: the values ``tanuki
    arena`` writes (``A``, ``B``, ``tie``, ``bothbad``); another arena's votes need their own."""
    judge_decision: Literal["consistent", "calibrated"] = "consistent"
    """``consistent``: the judge writes a verdict in each order; disagreeing orders are a tie.
    ``calibrated``: the judge's verdict probabilities in both orders are averaged (a vLLM judge;
    cancels a position bias, for small judges); a lead under ``min_preference`` is a tie."""
    min_preference: float = Field(default=0.2, ge=0, le=1)
    """``calibrated``: the least averaged lead that decides a battle."""
    seed: int = 0
    """Seed of the prompt choice."""
    parallel: int = Field(default=4, ge=1)
    """Requests in flight at once."""

    @model_validator(mode="after")
    def _codes_for_votes(self) -> ArenaConfig:
        if (self.votes is not None or self.votes_database) and not self.vote_codes:
            raise ValueError("vote_codes: give the winner of each `evaluation` value of the votes")
        return self


class RatingsConfig(ConfigModel):
    """How battles become ratings."""

    bootstrap_rounds: int = Field(default=1000, ge=0)
    """Bootstrap resamples for the Bradley-Terry confidence intervals (0: none)."""
    seed: int = 0
    """Seed of the bootstrap."""
    anchor_model: str | None = None
    """Pin this model's Bradley-Terry rating (the Tanuki table pins Tanuki-8B at 1000)."""
    anchor_rating: float = 1000.0
    """The anchor model's rating."""
    glicko_tau: float = Field(default=0.5, gt=0)
    """Glicko-2's τ (how fast volatility may change)."""
    glicko_period: int = Field(default=1, ge=1)
    """Battles per Glicko-2 rating period, in log order."""
    prior_sd: float | None = Field(default=None, gt=0)
    """Regularise Bradley-Terry with a Gaussian prior N(1000, prior_sd²) on each rating (400 is
    scikit-learn's default L2 penalty, C = 1, which FastChat's first arena notebook used), named on
    the pages. Empty: maximum likelihood, and a model that never lost (or never won) against the
    rest is shown as not estimable, with its record, instead of an arbitrary number."""
    min_battles: int = Field(default=10, ge=1)
    """Below this many battles a model's row says it has too few for any claim."""


class HarnessConfig(ConfigModel):
    """EleutherAI's lm-evaluation-harness against each target's OpenAI-compatible endpoint."""

    tasks: list[str] = Field(default_factory=lambda: ["tanuki_ja_mc"], min_length=1)
    """Harness task or group names: its own (their datasets must be reachable) or those of
    ``task_dir``; default: the tiny Japanese multiple-choice task shipped with tanuki."""
    task_dir: InputPath | None = None
    """A directory of task YAMLs (``--include_path``); relative data files resolve against it, so a
    task with local data works offline. Empty: the tasks shipped with tanuki."""
    interface: Literal["completions", "chat-completions"] = "completions"
    """``completions`` (``local-completions``: log-likelihood and generation tasks) or
    ``chat-completions`` (``local-chat-completions`` with the chat template: generation tasks only)."""
    num_fewshot: int | None = Field(default=None, ge=0)
    """Few-shot examples per prompt (default: each task's own)."""
    limit: int | None = Field(default=None, ge=1)
    """Evaluate at most this many documents per task (a smoke run)."""
    max_length: int | None = Field(default=None, ge=16)
    """Context length the harness truncates to; empty: the server's ``max_model_len`` (from ``/v1/models``)."""
    concurrent: int = Field(default=4, ge=1)
    """Requests in flight at once."""
    seed: int = 1234
    """Seed of the harness's sampling (few-shot choice, request seeds)."""
    timeout_seconds: int = Field(default=3600, ge=60)
    """The longest one target's harness run may take."""


class PerplexityGate(ConfigModel):
    """Held-out log-likelihood, scored by the serving engine (vLLM's ``prompt_logprobs``; nothing is
    generated): passes when the canary's mean per token is at most ``max_drop`` nats below the
    reference's."""

    texts: InputPath | None = None
    """Held-out texts: JSONL with a ``text`` field (or MT-Bench questions, every turn), one record a
    line; empty: the turns of the shipped Japanese questions."""
    max_texts: int = Field(default=64, ge=1)
    """Score at most this many texts (the first ones)."""
    max_text_tokens: int | None = Field(default=None, ge=2)
    """Keep only a text's last this many tokens (vLLM's ``truncate_prompt_tokens``): below the
    served context length; empty: whole texts."""
    max_drop: float = Field(default=0.05, gt=0)
    """How far (nats per token) the canary's mean log-likelihood may be below the reference's."""
    max_perplexity: float | None = Field(default=None, gt=1)
    """The absolute bar, for a model with nothing to compare with (one target: a ModelServer's first
    revision): the highest perplexity (e^−mean log-likelihood per token) that passes. Empty: such a
    model is not judged on perplexity."""


class ArenaGate(ConfigModel):
    """Judged battles of the canary against the reference on ``arena``'s prompts, in both orders
    (``arena.judge_decision``): passes unless the canary is clearly worse, i.e. when the one-sided
    lower confidence bound of its win rate (ties half) is at least ``min_win_rate``."""

    min_win_rate: float = Field(default=0.4, gt=0, lt=1)
    """The least lower bound of the canary's win rate that passes."""
    confidence: float = Field(default=0.95, ge=0.5, lt=1)
    """Confidence of the lower bound (one-sided Wilson score interval)."""


class GradeGate(ConfigModel):
    """MT-Bench-style single-answer grades (``grade``'s questions): passes when the canary's mean
    grade is at least the reference's − ``max_drop``."""

    max_drop: float = Field(default=0.5, ge=0, le=9)
    """How far (on the 1–10 scale) the canary's mean grade may be below the reference's."""
    min_grade: float | None = Field(default=None, ge=1, le=10)
    """The absolute bar, for a model with nothing to compare with (one target): the least mean grade
    that passes. Empty: such a model is not judged on grades."""


class HarnessGate(ConfigModel):
    """lm-evaluation-harness tasks (``harness``'s settings): passes when each task's score is at
    least the reference's − ``max_drop``."""

    max_drop: float = Field(default=0.02, ge=0, le=1)
    """How far each task's score may be below the reference's."""
    min_scores: dict[str, float] = Field(default_factory=dict)
    """The absolute bar, for a model with nothing to compare with (one target): task → the least
    headline score that passes. Empty: such a model is not judged on the harness."""


class GateConfig(ConfigModel):
    """``mode: gate``: is the first target (the canary) not worse than the second (the reference)?
    Every gate given is evaluated; one that fails fails the verdict, one without evidence leaves it
    undecided."""

    perplexity: PerplexityGate | None = None
    """Held-out log-likelihood (needs no judge)."""
    arena: ArenaGate | None = None
    """Judged battles, non-inferiority."""
    grade: GradeGate | None = None
    """Judged single-answer grades."""
    harness: HarnessGate | None = None
    """lm-evaluation-harness scores."""

    def needs_judge(self) -> bool:
        return self.arena is not None or self.grade is not None

    def given(self) -> list[str]:
        """The gates configured, in evaluation order."""
        return [name for name in ("perplexity", "arena", "grade", "harness") if getattr(self, name) is not None]

    def bars(self) -> list[str]:
        """The gates with an absolute bar (what judges a model with no reference), in evaluation order."""
        return [name for name, bar in (("perplexity", self.perplexity and self.perplexity.max_perplexity),
                                       ("grade", self.grade and self.grade.min_grade),
                                       ("harness", self.harness and self.harness.min_scores)) if bar]


class EvalConfig(ConfigModel):
    """Grade served models with an LLM judge and rate them against each other."""

    mode: Literal["grade", "arena", "harness", "gate"] = "grade"
    """``grade``: MT-Bench-style scores per target; ``arena``: pairwise battles between the targets, then
    ratings; ``harness``: lm-evaluation-harness tasks per target; ``gate``: is the first target (a
    canary) not worse than the second (its reference), by the ``gate`` settings — or, given one
    target, does it reach the gates' absolute bars."""
    targets: list[Contestant] = Field(default_factory=list)
    """The models under test (the operator fills them from ``spec.targets``)."""
    judge: JudgeEndpoint = Field(default_factory=JudgeEndpoint)
    """The judge."""
    grade: GradeConfig = Field(default_factory=GradeConfig)
    """Grading settings."""
    arena: ArenaConfig = Field(default_factory=ArenaConfig)
    """Arena settings."""
    ratings: RatingsConfig = Field(default_factory=RatingsConfig)
    """Rating settings."""
    harness: HarnessConfig = Field(default_factory=HarnessConfig)
    """lm-evaluation-harness settings."""
    gate: GateConfig = Field(default_factory=GateConfig)
    """``mode: gate``: which quality gates decide, and their thresholds."""

    @field_validator("targets")
    @classmethod
    def _distinct_labels(cls, targets: list[Contestant]) -> list[Contestant]:
        labels = [target.label for target in targets]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two targets share a name: {labels}; set `name` on each")
        return targets

    @model_validator(mode="after")
    def _gate_compares_two(self) -> EvalConfig:
        if self.mode != "gate":
            return self
        if not self.gate.given():
            raise ValueError("gate: mode gate needs at least one of gate.perplexity, gate.arena, gate.grade, "
                             "gate.harness")
        if len(self.targets) == 1 and not self.gate.bars():
            raise ValueError("targets: one target is judged against absolute bars; give gate.perplexity.max_perplexity, "
                             "gate.grade.min_grade or gate.harness.min_scores (or a second target, the reference)")
        if len(self.targets) > 2:
            raise ValueError(f"targets: mode gate compares two targets, the canary then its reference "
                             f"(got {len(self.targets)})")
        return self
