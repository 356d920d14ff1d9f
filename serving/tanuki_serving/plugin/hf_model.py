"""TanukiMoe for transformers: Mixtral classes with only the router changed."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, MixtralConfig, MixtralForCausalLM
from transformers.models.mixtral import modeling_mixtral

from tanuki_serving.plugin import ARCHITECTURE, MODEL_TYPE, normalize_gate_logits


class TanukiMoeConfig(MixtralConfig):  # type: ignore[no-untyped-call]  # transformers: unannotated __init_subclass__
    model_type = MODEL_TYPE

    def __init__(self, gate_norm_scale: float = 1.0, **kwargs: Any) -> None:
        self.gate_norm_scale = gate_norm_scale
        super().__init__(**kwargs)


class TanukiMoeTopKRouter(modeling_mixtral.MixtralTopKRouter):
    """Mixtral's router with the gate logits normalised before softmax and top-k."""

    def __init__(self, config: TanukiMoeConfig) -> None:
        super().__init__(config)  # type: ignore[no-untyped-call]  # transformers: unannotated __init__
        self.gate_norm_scale = config.gate_norm_scale

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        hidden_states = hidden_states.reshape(-1, self.hidden_dim)
        router_logits = normalize_gate_logits(F.linear(hidden_states, self.weight).float(), self.gate_norm_scale)
        router_probs = F.softmax(router_logits, dim=-1)
        top_values, top_indices = torch.topk(router_probs, self.top_k, dim=-1)
        top_values /= top_values.sum(dim=-1, keepdim=True)
        return router_logits, top_values, top_indices


class TanukiMoeForCausalLM(MixtralForCausalLM):  # type: ignore[no-untyped-call]  # transformers: unannotated __init_subclass__
    config_class = TanukiMoeConfig

    def __init__(self, config: TanukiMoeConfig) -> None:
        super().__init__(config)  # type: ignore[no-untyped-call]  # transformers: unannotated __init__
        for layer in self.model.layers:
            router = TanukiMoeTopKRouter(config)
            layer.mlp.gate = router


def register_transformers() -> None:
    """Make AutoConfig / AutoModelForCausalLM resolve ``model_type: tanuki_moe`` (idempotent)."""
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )

    try:
        AutoConfig.register(MODEL_TYPE, TanukiMoeConfig)
        AutoModelForCausalLM.register(TanukiMoeConfig, TanukiMoeForCausalLM)
    except ValueError:  # already registered in this process
        return
    # same on-disk layout as Mixtral (per-expert w1/w2/w3): reuse its key conversion both ways
    mixtral = get_checkpoint_conversion_mapping("mixtral")  # type: ignore[no-untyped-call]  # transformers: unannotated
    register_checkpoint_conversion_mapping(MODEL_TYPE, mixtral, overwrite=True)


__all__ = ["ARCHITECTURE", "TanukiMoeConfig", "TanukiMoeForCausalLM", "register_transformers"]
