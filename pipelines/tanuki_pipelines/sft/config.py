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
    save_every_steps: int = Field(default=100, ge=1)
    """Write a resumable checkpoint every this many optimizer steps (a rerun resumes from the newest)."""
    keep_last: int = Field(default=2, ge=1)
    """Resumable checkpoints kept."""


class LoraSettings(ConfigModel):
    """Low-rank adapters (peft) instead of full fine-tuning."""

    r: int = Field(default=16, ge=1)
    """Adapter rank."""
    alpha: int = Field(default=32, ge=1)
    """Adapter scaling α (the update is scaled by α / r)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapter's input."""
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names that get adapters (Tanuki-8x8B's DPO: q, k, v)."""
    merge: bool = True
    """Merge the trained adapter into a full checkpoint (what vLLM serves); False: save the adapter too."""


class SFTConfig(ConfigModel):
    """Chat fine-tuning on ``{"messages": [...]}`` JSONL with loss on assistant turns only."""

    model: InputPath | None = None
    """Starting HF checkpoint (set by the operator from ``spec.model``)."""
    dataset: InputPath | None = None
    """Chat JSONL (set by the operator from ``spec.dataset``)."""
    assistant_only_loss: bool = True
    """Mask user/system tokens out of the loss (uses the template's generation markers)."""
    packing: bool = False
    """Pack several conversations into each ``max_length`` sequence."""
    lora: LoraSettings | None = None
    """Train low-rank adapters instead of every weight."""
    router_aux_loss_coef: float | None = Field(default=None, ge=0)
    """Mixture-of-Experts checkpoints: weight of the router's load-balancing loss, which is kept in
    the loss (default: the checkpoint's own, i.e. pretraining's)."""
    train: FinetuneTrain = Field(default_factory=FinetuneTrain)
    """Optimisation settings."""
