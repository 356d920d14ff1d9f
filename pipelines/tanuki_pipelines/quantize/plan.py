"""What a recipe asks of llmcompressor, and whether the hardware and vLLM can serve it (pure)."""

from __future__ import annotations

from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.quantize.config import GGUF_TYPES, QuantizeConfig

GROUP_SIZE = 128
"""W4A16 quantizes weights in groups of this many input columns (llmcompressor's preset)."""
ROUTER_PATTERN = r"re:.*mlp\.gate$"
"""MoE routers (transformers 5 names them ``mlp.gate``; older Mixtral code ``block_sparse_moe.gate``)."""
ROUTER_PATTERN_LEGACY = r"re:.*block_sparse_moe\.gate$"
EXPERTS_PATTERN = r"re:.*\.experts\..*"
"""Every module inside an MoE layer's experts."""
ATTENTION_TARGET = r"re:.*self_attn\.(q|k|v|o)_proj$"
"""What an MoE with unquantized experts quantizes. Targets, not only ``ignore``: the checkpoint's
ignore list names each expert's Linear as transformers calls it (``experts.0.up_proj``) but vLLM
looks its fused experts up as ``experts.0.w1``, so with target ``Linear`` it would build an int8
MoE over unquantized weights."""
GPTQ_SCHEMES = {"W8A8": "W8A8", "W4A16": "W4A16"}
"""Our scheme → llmcompressor's preset scheme name, for GPTQ."""


def is_moe(model_config: dict[str, Any]) -> bool:
    """A Mixtral-style checkpoint (experts per layer) rather than a dense one."""
    return int(model_config.get("num_local_experts") or model_config.get("num_experts") or 0) > 1


def linear_input_widths(model_config: dict[str, Any]) -> dict[str, int]:
    """Input width of each kind of Linear layer of a Llama/Mixtral-shaped model, by config field."""
    hidden = int(model_config["hidden_size"])
    heads = int(model_config["num_attention_heads"])
    head_dim = int(model_config.get("head_dim") or hidden // heads)
    return {"hidden_size": hidden, "intermediate_size": int(model_config["intermediate_size"]),
            "num_attention_heads × head_dim": heads * head_dim}


def ignore_list(config: QuantizeConfig, moe: bool) -> list[str]:
    """The recipe's ``ignore`` plus, for an MoE, the routers and (unless quantized) the experts."""
    ignore = list(config.ignore)
    if moe:
        ignore += [ROUTER_PATTERN, ROUTER_PATTERN_LEGACY]
        if not config.quantize_experts:
            ignore.append(EXPERTS_PATTERN)
    return list(dict.fromkeys(ignore))


def check_scheme(config: QuantizeConfig, model_config: dict[str, Any], on_gpu: bool) -> None:
    """Refuse, before any calibration, what the hardware or vLLM cannot run; the message names the
    field and what would work."""
    problems = []
    moe = is_moe(model_config)
    if config.scheme == "GGUF":
        if config.gguf_type not in GGUF_TYPES:
            problems.append(f"gguf_type: {config.gguf_type!r} is not a llama.cpp type; use one of {', '.join(GGUF_TYPES)}")
    elif config.gguf_type != "q8_0":
        problems.append(f"gguf_type: only used with scheme GGUF (scheme is {config.scheme}); remove it")
    if config.scheme == "FP8" and not on_gpu:
        problems.append("scheme: FP8 needs a GPU to calibrate and serve (device is cpu); "
                        "use W8A8 or W4A16 on the CPU backend")
    if config.scheme == "W4A16" and not on_gpu and config.dtype != "bfloat16":
        problems.append(f"dtype: W4A16 on the CPU backend needs bfloat16 (vLLM's cpu_gemm_wna16 has no "
                        f"{config.dtype} kernel); set dtype: bfloat16, or use scheme GGUF for float32")
    if config.scheme == "W8A8" and not on_gpu and config.dtype == "float32":
        problems.append("dtype: W8A8 on the CPU backend needs bfloat16 or float16 activations (vLLM's "
                        "int8_scaled_mm_with_quant has no float32 kernel); set dtype: bfloat16")
    if config.scheme == "W4A16":
        for field, width in linear_input_widths(model_config).items():
            if width % GROUP_SIZE:
                problems.append(f"scheme: W4A16 quantizes in groups of {GROUP_SIZE} columns but the model's "
                                f"{field} is {width}; use W8A8 (no groups) or GGUF")
    if config.quantize_experts and not moe:
        problems.append("quantize_experts: the model has no experts (dense checkpoint); remove it")
    if config.quantize_experts and moe and not on_gpu and config.scheme != "GGUF":
        problems.append("quantize_experts: vLLM's CPU backend has no quantized-MoE kernel; set "
                        "quantize_experts: false (attention-only quantization) or run on a GPU")
    if config.scheme not in ("GGUF", "FP8") and config.calibration.path is None:
        problems.append(f"calibration.path: {config.scheme} calibrates on texts; name a JSONL file or a "
                        "SynthJob/PretrainJob output directory")
    if config.calibration.path is None:
        problems.append("calibration.path: the quality gate scores held-out texts from it; name a JSONL file "
                        "or a SynthJob/PretrainJob output directory")
    if problems:
        raise BadInputError("; ".join(dict.fromkeys(problems)))


def targets(config: QuantizeConfig, moe: bool) -> str | list[str]:
    return [ATTENTION_TARGET] if moe and not config.quantize_experts else "Linear"


def build_recipe(config: QuantizeConfig, moe: bool) -> list[tuple[str, dict[str, Any]]]:
    """llmcompressor modifiers as (class name in ``llmcompressor.modifiers``, keyword arguments)."""
    ignore, target = ignore_list(config, moe), targets(config, moe)
    if config.scheme == "FP8":
        return [("QuantizationModifier", {"targets": target, "scheme": "FP8_DYNAMIC", "ignore": ignore})]
    if config.scheme not in GPTQ_SCHEMES:
        raise ValueError(f"scheme {config.scheme} is not an llmcompressor scheme")
    recipe: list[tuple[str, dict[str, Any]]] = []
    if config.scheme == "W8A8":
        recipe.append(("SmoothQuantModifier", {"smoothing_strength": config.smoothing_strength}))
    recipe.append(("GPTQModifier", {"targets": target, "scheme": GPTQ_SCHEMES[config.scheme], "ignore": ignore}))
    return recipe


def needs_calibration(config: QuantizeConfig) -> bool:
    return config.scheme in GPTQ_SCHEMES
