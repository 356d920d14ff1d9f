"""Recipe model of the upcycling stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tanuki_pipelines.config import ConfigModel, InputPath


class RouterInit(ConfigModel):
    """How the new router (gate) weights start."""

    type: Literal["random", "zeros"] = "random"
    """``random``: normal with ``std``; ``zeros``: every expert equally likely at first."""
    std: float = Field(default=0.02, ge=0)
    """Standard deviation of the random router initialisation."""


class GateNorm(ConfigModel):
    """Skywork-MoE gate-logit normalisation before top-k: z̃ = λ (z − μ) / σ."""

    enabled: bool = False
    """Normalise gate logits (the checkpoint then uses the TanukiMoe architecture)."""
    scale: float = Field(default=1.0, gt=0)
    """λ, the scale applied after standardising the logits."""


class UpcycleConfig(ConfigModel):
    """Copy the dense FFN into every expert (plus noise) and add a router."""

    source: InputPath | None = None
    """Dense HF Llama checkpoint directory (set by the operator from ``spec.model``)."""
    num_experts: int = Field(default=8, ge=2)
    """Experts per MoE layer (Tanuki-8x8B: 8)."""
    top_k: int = Field(default=2, ge=1)
    """Experts each token is routed to (Tanuki-8x8B: 2)."""
    noise_std: float = Field(default=0.001, ge=0)
    """Standard deviation of Gaussian noise added to each expert copy (Tanuki: 0.001)."""
    router_init: RouterInit = Field(default_factory=RouterInit)
    """Router weight initialisation."""
    gate_norm: GateNorm = Field(default_factory=GateNorm)
    """Optional gate-logit normalisation."""
    router_aux_loss_coef: float = Field(default=0.02, ge=0)
    """Load-balancing loss coefficient recorded in the MoE config for continued pretraining."""
    max_shard_size: str = "5GB"
    """Largest safetensors shard written."""
    seed: int = 0
    """Seeds the noise and the router initialisation."""

    @model_validator(mode="after")
    def _check_top_k(self) -> UpcycleConfig:
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k ({self.top_k}) exceeds num_experts ({self.num_experts})")
        return self
