"""What a recipe asks of llmcompressor, and whether the hardware and vLLM can serve it (pure)."""

from __future__ import annotations

from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.preflight import is_moe
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


def linear_input_widths(model_config: dict[str, Any]) -> dict[str, int]:
    """Input width of each kind of Linear layer of a Llama/Mixtral-shaped model, by config field."""
    hidden = int(model_config["hidden_size"])
    heads = int(model_config["num_attention_heads"])
    head_dim = int(model_config.get("head_dim") or hidden // heads)
    return {"hidden_size": hidden, "intermediate_size": int(model_config["intermediate_size"]),
            "num_attention_heads × head_dim": heads * head_dim}


def fused_linear_shapes(model_config: dict[str, Any]) -> dict[str, tuple[int, int, str]]:
    """(output width N, input width K, the config fields they come from) of each Linear vLLM builds
    for a Llama/Mixtral-shaped model, with q/k/v and gate/up fused as vLLM fuses them."""
    hidden = int(model_config["hidden_size"])
    heads = int(model_config["num_attention_heads"])
    kv_heads = int(model_config.get("num_key_value_heads") or heads)
    head_dim = int(model_config.get("head_dim") or hidden // heads)
    intermediate = int(model_config["intermediate_size"])
    return {
        "qkv_proj": ((heads + 2 * kv_heads) * head_dim, hidden,
                     "(num_attention_heads + 2 × num_key_value_heads) × head_dim over hidden_size"),
        "o_proj": (hidden, heads * head_dim, "hidden_size over num_attention_heads × head_dim"),
        "gate_up_proj": (2 * intermediate, hidden, "2 × intermediate_size over hidden_size"),
        "down_proj": (hidden, intermediate, "hidden_size over intermediate_size"),
    }


def int8_cpu_packing_failures(model_config: dict[str, Any], attention_only: bool = False) -> list[str]:
    """Layers vLLM's CPU int8 kernel cannot pack (pure). On CPUs with AMX it packs a W8A8 layer
    whose input width K is a multiple of 32 and output width N a multiple of 16 into blocks of 32
    output rows (``sgl-kernels/gemm.cpp`` ``pack_vnni<int8_t>``: ``TORCH_CHECK(N == BLOCK_N)``), so
    N = 32·k + 16 fails at load time ("Expected N == BLOCK_N"); other shapes go to oneDNN, which
    takes any width. The node's CPU is not known before the pod runs, so the rule is applied to
    every CPU run."""
    layers = fused_linear_shapes(model_config)
    if attention_only:
        layers = {name: shape for name, shape in layers.items() if name in ("qkv_proj", "o_proj")}
    return [f"{layer} is {n} × {k} ({fields})" for layer, (n, k, fields) in layers.items()
            if k % 32 == 0 and n % 32 == 16]


def ignore_list(config: QuantizeConfig, moe: bool) -> list[str]:
    """The recipe's ``ignore`` plus, for an MoE, the routers and (unless quantized) the experts."""
    ignore = list(config.ignore)
    if moe:
        ignore += [ROUTER_PATTERN, ROUTER_PATTERN_LEGACY]
        if not config.quantize_experts:
            ignore.append(EXPERTS_PATTERN)
    return list(dict.fromkeys(ignore))


def check_scheme(config: QuantizeConfig, model_config: dict[str, Any], on_gpu: bool,
                 cpu_flags: frozenset[str] | None = None) -> None:
    """Refuse, before any calibration, what the hardware or vLLM cannot run."""
    problems = scheme_problems(config, model_config, on_gpu, cpu_flags)
    if problems:
        raise BadInputError("; ".join(problems))


def scheme_problems(config: QuantizeConfig, model_config: dict[str, Any], on_gpu: bool,
                    cpu_flags: frozenset[str] | None = None) -> list[str]:
    """What the hardware or vLLM cannot run of this scheme on this model, each naming the field and
    what would work (pure). ``cpu_flags``: the x86 CPU's flags where known."""
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
    if config.scheme == "W4A16" and not on_gpu and cpu_flags is not None and "avx512f" not in cpu_flags:
        # vLLM picks its CPU kernel library by ISA; the AVX2 one (_C_AVX2) has no cpu_gemm_wna16
        problems.append("scheme: W4A16 on this CPU: vLLM's kernels for x86 CPUs without AVX-512 have no 4-bit "
                        "weight GEMM (cpu_gemm_wna16); use W8A8 or GGUF here, or an AVX-512 node or a GPU")
    if config.scheme == "W4A16" and not on_gpu and config.dtype != "bfloat16":
        problems.append(f"dtype: W4A16 on the CPU backend needs bfloat16 (vLLM's cpu_gemm_wna16 has no "
                        f"{config.dtype} kernel); set dtype: bfloat16, or use scheme GGUF for float32")
    if config.scheme == "W8A8" and not on_gpu and config.dtype == "float32":
        problems.append("dtype: W8A8 on the CPU backend needs bfloat16 or float16 activations (vLLM's "
                        "int8_scaled_mm_with_quant has no float32 kernel); set dtype: bfloat16")
    if config.scheme == "W8A8" and not on_gpu:
        # an MoE with unquantized experts quantizes only attention (see ATTENTION_TARGET)
        failing = int8_cpu_packing_failures(model_config, attention_only=moe and not config.quantize_experts)
        if failing:
            problems.append("scheme: W8A8 on the CPU backend: vLLM's int8 weight packing (x86 CPUs with AMX) "
                            "fails on a layer whose output width is 16 more than a multiple of 32 over an input "
                            f"width that is a multiple of 32: {'; '.join(failing)}; make intermediate_size a "
                            "multiple of 16 and hidden_size and the heads' widths multiples of 32 (e.g. "
                            "intermediate_size 512, not 520), or use GGUF")
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
    return list(dict.fromkeys(problems))


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
