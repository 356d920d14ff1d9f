"""Recipe model of the SFT stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tanuki_pipelines.config import ConfigModel, InputPath


class FinetuneTrain(ConfigModel):
    """Optimisation settings shared by SFT and DPO (passed to TRL)."""

    epochs: float = Field(default=1.0, gt=0)
    """Passes over the dataset."""
    max_steps: int = Field(default=-1, ge=-1)
    """Stop after this many steps (-1: run ``epochs``)."""
    lr: float = Field(default=1e-5, gt=0)
    """Peak learning rate."""
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    """Share of steps spent warming up."""
    micro_batch_size: int = Field(default=1, ge=1)
    """Examples per device per step."""
    grad_accum_steps: int = Field(default=8, ge=1)
    """Micro-batches per optimizer step."""
    max_length: int = Field(default=4096, ge=16)
    """Longest example in tokens (longer ones are truncated)."""
    zero_stage: Literal[0, 1, 2, 3] = 3
    """DeepSpeed ZeRO stage."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """``auto``: bf16 on GPU, fp32 on CPU."""
    seed: int = 0
    """Training seed."""


class SFTConfig(ConfigModel):
    """Chat fine-tuning on ``{"messages": [...]}`` JSONL with loss on assistant turns only."""

    model: InputPath | None = None
    """Starting HF checkpoint (set by the operator from ``spec.model``)."""
    dataset: InputPath | None = None
    """Chat JSONL (set by the operator from ``spec.dataset``)."""
    assistant_only_loss: bool = True
    """Mask user/system tokens out of the loss (uses the template's generation markers)."""
    train: FinetuneTrain = Field(default_factory=FinetuneTrain)
    """Optimisation settings."""
