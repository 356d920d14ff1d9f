"""Recipe model of the quantization stage (pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tanuki_pipelines.config import ConfigModel, InputPath

Scheme = Literal["W8A8", "W4A16", "FP8", "GGUF"]
Dtype = Literal["bfloat16", "float16", "float32"]

GGUF_CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
"""Types llama.cpp's ``convert_hf_to_gguf.py`` writes itself."""
GGUF_QUANTIZER_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s",
                        "q4_k_m", "q5_k_s", "q5_k_m", "q6_k")
"""Types written by llama.cpp's quantizer from an f16 GGUF (``llama_model_quantize``)."""
GGUF_TYPES = GGUF_CONVERTER_TYPES + GGUF_QUANTIZER_TYPES


class Calibration(ConfigModel):
    """Texts llmcompressor runs through the model to calibrate (and the held-out texts of the gate)."""

    path: InputPath | None = None
    """A JSONL file (records with ``text``, or ``messages`` rendered with the chat template), or the
    output directory of a SynthJob / PretrainJob (its ``outputs.json`` ``dataset``, else its ``*.jsonl``)."""
    num_samples: int = Field(default=512, ge=1)
    """Calibration texts drawn (seeded) from ``path``; fewer when it holds fewer."""
    max_seq_length: int = Field(default=512, ge=8)
    """Each calibration text is truncated to this many tokens."""
    seed: int = 0
    """Seeds which texts are drawn for calibration and which are held out for the gate."""


class Gate(ConfigModel):
    """The quality gate: the quantized model scored against the source on held-out texts."""

    threshold: float = Field(default=0.95, ge=0, le=1)
    """Least next-token (greedy argmax) agreement with the source model; below it the stage fails (exit 2)."""
    num_texts: int = Field(default=32, ge=1)
    """Held-out texts scored (never used for calibration)."""
    max_tokens: int = Field(default=128, ge=2)
    """Each held-out text is truncated to this many tokens."""


class QuantizeConfig(ConfigModel):
    """Quantize a finished checkpoint with llmcompressor (vLLM) or llama.cpp (GGUF)."""

    source: InputPath | None = None
    """HF checkpoint directory to quantize (set by the operator from ``spec.model``)."""
    scheme: Scheme = "W8A8"
    """``W8A8``: SmoothQuant + GPTQ int8 weights and activations (vLLM, CPU or GPU); ``W4A16``: GPTQ
    4-bit weights in groups of 128 (vLLM; bfloat16 on the CPU backend); ``FP8``: dynamic FP8 (vLLM on a
    GPU only); ``GGUF``: llama.cpp's converter and quantizer (llama.cpp / Ollama)."""
    dtype: Dtype = "bfloat16"
    """Dtype the model is calibrated in and served with (vLLM ``--dtype``)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where calibration runs and the quantized model will be served: ``auto`` is ``cuda`` when a GPU
    is visible."""
    ignore: list[str] = Field(default_factory=lambda: ["lm_head"])
    """Modules left unquantized (names or ``re:`` patterns, llmcompressor's syntax). MoE routers
    (``mlp.gate``) are always left unquantized."""
    quantize_experts: bool = False
    """MoE only: quantize the expert FFNs too (vLLM's CPU backend has no quantized-MoE kernel; GPUs do)."""
    smoothing_strength: float = Field(default=0.8, gt=0, lt=1)
    """SmoothQuant migration strength α (W8A8 only)."""
    gguf_type: str = "q8_0"
    """GGUF only: ``f32``, ``f16``, ``bf16``, ``q8_0`` or a llama.cpp quantizer type such as ``q4_k_m``."""
    llama_cpp_dir: InputPath | None = None
    """GGUF only: llama.cpp's source tree holding ``convert_hf_to_gguf.py`` (default
    ``$TANUKI_LLAMA_CPP_DIR``, else ``<venv>/share/llama.cpp``)."""
    calibration: Calibration = Field(default_factory=Calibration)
    """Calibration texts."""
    gate: Gate = Field(default_factory=Gate)
    """Quality gate."""
