"""Recipe model of the DPO stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tanuki_pipelines.config import ConfigModel, InputPath
from tanuki_pipelines.sft.config import FinetuneTrain


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


class PairGeneration(ConfigModel):
    """The policy answers each prompt twice at a raised temperature."""

    temperature: float = Field(default=1.0, ge=0)
    """Sampling temperature for the two answers."""
    max_tokens: int = Field(default=1024, ge=1)
    """Longest answer."""
    judge: JudgeEndpoint = Field(default_factory=JudgeEndpoint)
    """Compares the answers in both orders ([[A]] / [[B]] / [[C]]); only consistent verdicts count."""


class DPOConfig(ConfigModel):
    """Direct preference optimisation of a chat model."""

    model: InputPath | None = None
    """Policy checkpoint (set by the operator from ``spec.model``)."""
    prompts: InputPath | None = None
    """Prompts JSONL for pair generation, or a ready preference JSONL when ``generate`` is off."""
    generate: bool = True
    """Generate and judge pairs first; False: ``prompts`` already has prompt/chosen/rejected."""
    pairs: PairGeneration = Field(default_factory=PairGeneration)
    """Pair generation and judging."""
    beta: float = Field(default=0.1, gt=0)
    """DPO temperature β."""
    loss_type: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    """TRL DPO loss."""
    train: FinetuneTrain = Field(default_factory=FinetuneTrain)
    """Optimisation settings."""
