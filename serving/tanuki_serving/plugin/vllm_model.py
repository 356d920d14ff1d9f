"""TanukiMoe for vLLM: vLLM's Mixtral with the router logits normalised before routing."""

from __future__ import annotations

from typing import cast

import torch
from vllm.config import VllmConfig
from vllm.model_executor.models.mixtral import MixtralForCausalLM, MixtralMoE

from tanuki_serving.plugin import normalize_gate_logits


class TanukiMoeMoE(MixtralMoE):
    gate_norm_scale: float = 1.0

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        orig_shape = hidden_states.shape
        hidden_states = hidden_states.view(-1, self.hidden_size)
        router_logits, _ = self.gate(hidden_states)
        router_logits = normalize_gate_logits(router_logits.float(), self.gate_norm_scale).to(router_logits.dtype)
        output: torch.Tensor = self.experts(hidden_states, router_logits)  # nn.Module.__call__ is untyped (Any)
        return output.view(orig_shape)


class TanukiMoeForCausalLM(MixtralForCausalLM):
    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        scale = float(getattr(vllm_config.model_config.hf_config, "gate_norm_scale", 1.0))
        for layer in self.model.layers:
            moe = getattr(layer, "block_sparse_moe", None)
            if isinstance(moe, MixtralMoE):
                # Only forward differs, so retype the built module instead of rebuilding it.
                moe.__class__ = TanukiMoeMoE
                # the assignment above made it a TanukiMoeMoE, which mypy cannot follow
                cast(TanukiMoeMoE, moe).gate_norm_scale = scale
