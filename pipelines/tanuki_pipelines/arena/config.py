"""Recipe model of ``tanuki arena serve`` (pydantic only): the contestants, the database, who may
vote and how often, the limits on what is asked."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tanuki_pipelines.config import ConfigModel, InputPath
from tanuki_pipelines.eval.config import Contestant, RatingsConfig


class Identity(ConfigModel):
    """Who is voting: every request but the health and metrics endpoints must name a voter."""

    mode: Literal["header", "tokens", "open"] = "header"
    """``header``: an authenticating proxy in front (oauth2-proxy, an ingress with auth) sets
    ``header`` to the user; ``tokens``: each voter holds a token the operator issued (a
    ``Bearer`` header, or ``?token=`` once, kept in a cookie); ``open``: anyone, identified by a
    random cookie (a local demo; a person can vote again from another browser)."""
    header: str = "X-Forwarded-User"
    """``header``: the request header holding the user (oauth2-proxy: ``X-Forwarded-User`` or
    ``X-Auth-Request-User``)."""
    tokens_file: InputPath | None = None
    """``tokens``: a file of ``voter:token`` lines."""
    tokens_env: str | None = None
    """``tokens``: instead of ``tokens_file``, the environment variable ``<VAR>_FILE`` naming that
    file (a mounted Secret key; the Arena kind sets this)."""

    @model_validator(mode="after")
    def _tokens(self) -> Identity:
        if self.mode == "tokens" and self.tokens_file is None and self.tokens_env is None:
            raise ValueError("tokens_file: give the file of voter:token lines (or tokens_env) for mode tokens")
        return self


class Limits(ConfigModel):
    """What one voter may ask and how often they may vote."""

    max_question_chars: int = Field(default=2000, ge=1)
    """Longest question (characters)."""
    max_corrected_chars: int = Field(default=8000, ge=1)
    """Longest corrected answer."""
    max_turns: int = Field(default=5, ge=1)
    """Questions per battle (the first and the follow-ups)."""
    votes_per_minute: int = Field(default=10, ge=1)
    """Votes one voter may cast in any 60 seconds."""
    battles_per_minute: int = Field(default=20, ge=1)
    """Battles one voter may start in any 60 seconds (counted by each arena process, from the
    database's count when it first sees the voter: with several replicas, at most this many on each)."""


class ArenaSettings(ConfigModel):
    """How the arena asks, limits and rates (what an Arena resource's ``spec.recipe`` holds; its
    models, database and voters come from the resource's own fields)."""

    questions: InputPath | None = None
    """A question set people may pick from: ``{"prompt"}`` or MT-Bench ``{"turns"}`` JSONL; empty:
    the shipped Japanese MT-Bench questions."""
    language: Literal["ja", "en"] = "ja"
    """The page's default language (the visitor can switch)."""
    max_tokens: int = Field(default=512, ge=1)
    """Longest answer requested from a model."""
    temperature: float = Field(default=0.7, ge=0)
    """Answer temperature."""
    answer_timeout_seconds: float = Field(default=300, gt=0)
    """A model that has not finished an answer by then fails the battle."""
    limits: Limits = Field(default_factory=Limits)
    """Input sizes and per-voter rates."""
    ratings: RatingsConfig = Field(default_factory=lambda: RatingsConfig(bootstrap_rounds=200))
    """How the live leaderboard rates the votes (as ``tanuki eval ratings``)."""
    results: InputPath | None = None
    """An EvalJob's output directory: its judged-arena ``leaderboard.json`` and MT-Bench
    ``grades.json`` are shown beside the votes' ratings."""
    identity_words: list[str] = Field(default_factory=lambda: [
        "ChatGPT", "GPT-4", "GPT-3.5", "OpenAI", "Claude", "Anthropic", "Gemini", "Bard", "Llama", "Mistral", "Qwen"])
    """Words that reveal who answered (besides the contestants' own names): a battle whose answer
    holds one is flagged and left out of the ratings, as FastChat does."""
    seed: int | None = None
    """Seed of the pair and position draws (empty: random)."""


class ArenaServeConfig(ArenaSettings):
    """A blind side-by-side arena: two anonymous answers, a person votes, ratings live."""

    contestants: list[Contestant] = Field(min_length=2)
    """The models (OpenAI-compatible endpoints) drawn two at a time."""
    database_url: str = "sqlite:///arena.db"
    """SQLAlchemy URL: SQLite (embedded; a relative path is under the output directory) or
    ``postgresql+psycopg://…``; ``TANUKI_ARENA_DATABASE_URL``, or the file
    ``TANUKI_ARENA_DATABASE_URL_FILE`` names (a mounted Secret), overrides it."""
    identity: Identity = Field(default_factory=Identity)
    """How voters are identified."""
    answers_at_start: bool = True
    """Ask both models for their first answers as the battle is drawn, before the page asks for
    them: the models work while the reply and the page's requests travel. Only where one process
    serves the arena (the Arena kind sets it for one replica): a page's stream that reaches another
    replica would have that one generate a second answer."""

    @model_validator(mode="after")
    def _distinct_names(self) -> ArenaServeConfig:
        labels = [contestant.label for contestant in self.contestants]
        if len(set(labels)) != len(labels):
            raise ValueError(f"contestants: two share a name: {labels}")
        return self
