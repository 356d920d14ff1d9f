"""TanukiMoe: Mixtral with Skywork-MoE gate-logit normalisation, for transformers and vLLM.

Before top-k routing each token's router logits z are standardised and scaled:
z̃ = λ (z − mean(z)) / std(z). Everything else is Mixtral, so checkpoints keep Mixtral's layout
and config keys plus ``gate_norm_scale`` (λ).

``register()`` is the ``vllm.general_plugins`` entry point: vLLM calls it in every process before
loading a model, so stock vLLM serves ``TanukiMoeForCausalLM`` once this package is installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ARCHITECTURE = "TanukiMoeForCausalLM"
MODEL_TYPE = "tanuki_moe"


def normalize_gate_logits(logits: torch.Tensor, scale: float, eps: float = 1e-6) -> torch.Tensor:
    """λ (z − μ) / σ over the expert dimension (population std, as Skywork-MoE)."""
    mean = logits.mean(dim=-1, keepdim=True)
    std = logits.std(dim=-1, keepdim=True, unbiased=False)
    return scale * (logits - mean) / (std + eps)


def register() -> None:
    from tanuki_serving.plugin.hf_model import register_transformers

    register_transformers()
    from vllm import ModelRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "tanuki_serving.plugin.vllm_model:TanukiMoeForCausalLM")
