"""Model construction: recipe → HF ``LlamaConfig`` (pure), parameter counts, FLOPs per token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tanuki_pipelines.pretrain.config import ModelConfig
from tanuki_pipelines.tokenizer.special import SpecialIds


def llama_config_kwargs(model: ModelConfig, special: SpecialIds | None = None) -> dict[str, Any]:
    """Keyword arguments for ``transformers.LlamaConfig`` (pure; no transformers import); the
    bos/eos/pad ids are the tokenizer's (``special``), transformers' defaults without one."""
    return {
        "vocab_size": model.vocab_size,
        "hidden_size": model.hidden_size,
        "intermediate_size": model.intermediate_size,
        "num_hidden_layers": model.num_hidden_layers,
        "num_attention_heads": model.num_attention_heads,
        "num_key_value_heads": model.num_key_value_heads,
        "head_dim": model.head_dim,
        "max_position_embeddings": model.max_position_embeddings,
        "rms_norm_eps": model.rms_norm_eps,
        "rope_theta": model.rope_theta,
        "tie_word_embeddings": model.tie_word_embeddings,
        "initializer_range": model.initializer_range,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        **(special.config_kwargs() if special is not None else {}),
    }


@dataclass(frozen=True)
class ParameterCount:
    total: int
    """Every parameter, embeddings and head included."""
    active: int
    """Parameters used per token (equal to total for a dense model)."""
    embedding: int
    """Input embedding rows × width (no FLOPs: a lookup)."""


def count_parameters(model: ModelConfig) -> ParameterCount:
    """Closed-form parameter count of the HF Llama built from ``model``."""
    d, f, layers = model.hidden_size, model.intermediate_size, model.num_hidden_layers
    kv_width = model.num_key_value_heads * model.head_dim
    attention = d * d * 2 + d * kv_width * 2  # q, o; k, v
    expert = 3 * d * f  # gate, up, down
    norms = 2 * d
    embedding = model.vocab_size * d
    head = 0 if model.tie_word_embeddings else model.vocab_size * d
    if model.num_experts > 1:
        router = model.num_experts * d
        all_experts, used_experts = model.num_experts * expert + router, model.experts_per_token * expert + router
    else:
        all_experts = used_experts = expert
    shared = layers * (attention + norms) + d + embedding + head
    return ParameterCount(total=shared + layers * all_experts, active=shared + layers * used_experts,
                          embedding=embedding)


def flops_per_token(model: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token: 6 × non-embedding parameters + attention (PaLM appendix B)."""
    params = count_parameters(model)
    matmul_params = params.active - params.embedding  # active: only the routed experts do FLOPs
    if model.tie_word_embeddings:
        matmul_params += params.embedding  # the tied head is still a matmul
    attention = 12 * model.num_hidden_layers * model.hidden_size * seq_len
    return 6.0 * matmul_params + attention


def mixtral_config_kwargs(model: ModelConfig, special: SpecialIds | None = None) -> dict[str, Any]:
    """Keyword arguments for ``transformers.MixtralConfig`` of an MoE shape (pure)."""
    kwargs = llama_config_kwargs(model, special)
    for key in ("attention_bias", "mlp_bias"):
        kwargs.pop(key)
    kwargs.update({"num_local_experts": model.num_experts, "num_experts_per_tok": model.experts_per_token,
                   "sliding_window": None})
    return kwargs


def build_model(model: ModelConfig, dtype: Any = None, special: SpecialIds | None = None) -> Any:
    """Instantiate ``LlamaForCausalLM`` with fresh weights (seed torch before calling).

    Goes through ``AutoModelForCausalLM.from_config`` so that, under an active ZeRO-3
    ``HfDeepSpeedConfig``, transformers partitions the weights at construction.
    """
    from transformers import AutoModelForCausalLM, LlamaConfig, MixtralConfig

    config: LlamaConfig | MixtralConfig
    if model.num_experts > 1:
        config = MixtralConfig(**mixtral_config_kwargs(model, special))
    else:
        config = LlamaConfig(**llama_config_kwargs(model, special))
    return AutoModelForCausalLM.from_config(config, dtype=dtype)


def count_parameters_on_meta(model: ModelConfig) -> int:
    """Count by building the real HF module on the meta device (no memory allocated)."""
    import torch

    with torch.device("meta"):
        module = build_model(model)
    return sum(parameter.numel() for parameter in module.parameters())
