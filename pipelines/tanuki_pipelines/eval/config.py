"""Recipe model of the evaluation stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tanuki_pipelines.config import ConfigModel, InputPath
from tanuki_pipelines.dpo.config import JudgeEndpoint


class EvalConfig(ConfigModel):
    """Grade a served model with an LLM judge and rate it against others."""

    target_url: str | None = None
    """OpenAI-compatible base URL of the model under test (set by the operator from ``spec.target``)."""
    target_model: str | None = None
    """Served model name of the model under test."""
    questions: InputPath | None = None
    """MT-Bench-style question JSONL (built-in Japanese set when empty)."""
    judge: JudgeEndpoint = Field(default_factory=JudgeEndpoint)
    """The grading judge."""
    ratings: list[Literal["glicko2", "bradley_terry"]] = Field(default_factory=lambda: ["glicko2", "bradley_terry"])
    """Arena rating systems computed from pairwise verdicts."""
    max_tokens: int = Field(default=1024, ge=1)
    """Longest answer requested from the target."""
