"""Recipe model of the DPO stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tanuki_pipelines.config import ConfigModel, InputPath
from tanuki_pipelines.eval.config import JudgeEndpoint
from tanuki_pipelines.sft.config import FinetuneTrain, LoraSettings
from tanuki_pipelines.synth.config import EndpointEngine, GeneratorModel, RayConfig


class PairGeneration(ConfigModel):
    """The policy answers each prompt twice at a raised temperature; a judge picks the better one."""

    temperature: float = Field(default=1.0, ge=0)
    """Sampling temperature for the two answers."""
    temperature_step: float = Field(default=0.1, gt=0)
    """When the two answers are identical the prompt is retried this much hotter …"""
    max_temperature: float = Field(default=1.5, ge=0)
    """… up to this temperature; still identical: left out (counted)."""
    max_tokens: int = Field(default=1024, ge=1)
    """Longest answer."""
    engine: Literal["vllm", "endpoint"] = "vllm"
    """``vllm``: the policy checkpoint in vLLM engines (Ray Data, as ``tanuki synth``); ``endpoint``:
    an OpenAI-compatible server already serving the policy."""
    generator: GeneratorModel = Field(default_factory=lambda: GeneratorModel(max_model_len=2048))
    """vLLM settings for the policy (its ``path`` is ``model``)."""
    ray: RayConfig = Field(default_factory=RayConfig)
    """Where the vLLM engines run."""
    endpoint: EndpointEngine | None = None
    """The server answering as the policy (engine ``endpoint``)."""
    shard_size: int = Field(default=64, ge=1)
    """Prompts per shard (a rerun skips finished shards)."""
    judge: JudgeEndpoint = Field(default_factory=JudgeEndpoint)
    """Compares the answers in both orders ([[A]] / [[B]] / [[C]]); only consistent verdicts count."""
    judge_decision: Literal["consistent", "calibrated"] = "consistent"
    """``consistent`` (Tanuki's rule): the judge reasons and writes a verdict in each order; a pair
    is kept only when both verdicts name the same answer. ``calibrated``: no generation; the judge's
    probability of each verdict is read in each order (a vLLM judge: ``prompt_logprobs``) and the
    preference is averaged over both orders, which cancels a position bias (for small judges that
    always answer the same letter); kept when it reaches ``min_preference``."""
    min_preference: float = Field(default=0.2, ge=0, le=1)
    """``calibrated``: the least averaged lead (P(better) − P(worse), both orders) that makes a pair."""
    judge_language: Literal["ja", "en"] = "ja"
    """Language of the judge's instructions."""
    judge_max_tokens: int = Field(default=512, ge=8)
    """Longest judgment."""
    judge_parallel: int = Field(default=4, ge=1)
    """Judge requests in flight at once."""


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
    max_prompt_tokens: int = Field(default=925, ge=8)
    """Prompts are cut to their last this many tokens before training (TRL 1.16 has no
    ``max_prompt_length``; Tanuki used 925 of ``train.max_length`` 1150)."""
    lora: LoraSettings | None = None
    """Train low-rank adapters instead of every weight (Tanuki-8x8B: r 128, α 256 on q, k, v)."""
    router_aux_loss_coef: float | None = Field(default=None, ge=0)
    """Mixture-of-Experts checkpoints: weight of the router's load-balancing loss (default: the checkpoint's)."""
    train: FinetuneTrain = Field(default_factory=FinetuneTrain)
    """Optimisation settings."""

    @model_validator(mode="after")
    def _endpoint_for_endpoint_engine(self) -> DPOConfig:
        if self.generate and self.pairs.engine == "endpoint" and self.pairs.endpoint is None:
            raise ValueError("pairs.endpoint: required with pairs.engine endpoint")
        return self
