"""The quantize program: check → calibrate and compress (or export GGUF) → gate → outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from tanuki_common.errors import BadInputError
from tanuki_pipelines.checkpoints import require_checkpoint
from tanuki_pipelines.outputs import format_progress
from tanuki_pipelines.preflight import is_moe
from tanuki_pipelines.quantize.config import QuantizeConfig
from tanuki_pipelines.quantize.gate import Quality, compare, gate_failure
from tanuki_pipelines.quantize.plan import build_recipe, check_scheme, needs_calibration
from tanuki_pipelines.quantize.texts import read_texts, split_texts

STEPS = 3  # quantize, score the source, score the quantized model


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def read_model_config(source: Path | None) -> dict[str, Any]:
    if source is None:
        raise BadInputError("source: no checkpoint to quantize (set source, or the QuantizeJob's model)")
    return json.loads((require_checkpoint("source", source) / "config.json").read_text(encoding="utf-8"))


def size_on_disk(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def gate_ids(tokenizer: Any, texts: list[str], max_tokens: int) -> list[list[int]]:
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens] for text in texts]
    return [row for row in ids if len(row) >= 2]


def quantize(config: QuantizeConfig, output_dir: Path) -> dict[str, Any]:
    model_config = read_model_config(config.source)
    device = resolve_device(config.device)
    on_gpu = device == "cuda"
    check_scheme(config, model_config, on_gpu)
    source = config.source
    assert source is not None and config.calibration.path is not None
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)

    def render(messages: list[dict[str, str]]) -> str:
        # transformers annotates every return kind at once; with tokenize=False it is the rendered text
        return cast(str, tokenizer.apply_chat_template(messages, tokenize=False))

    texts = read_texts(config.calibration.path, render)
    calibration, held_out = split_texts(texts, config.calibration.num_samples, config.gate.num_texts,
                                        config.calibration.seed)
    max_model_len = min(config.gate.max_tokens, int(model_config.get("max_position_embeddings") or 4096) - 1) + 1
    ids = gate_ids(tokenizer, held_out, max_model_len - 1)
    if not ids:
        raise BadInputError("calibration.path: no held-out text is two tokens long; the gate has nothing to score")

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "quality.json").unlink(missing_ok=True)  # an earlier run's figures
    from tanuki_pipelines.publish import publish_file, staging, staging_path

    if config.scheme == "GGUF":
        from tanuki_pipelines.quantize.gguf import export_gguf

        artifact = output_dir / f"model-{config.gguf_type}.gguf"
        staged = staging_path(artifact)
        export_gguf(source, staged, config.gguf_type, config.llama_cpp_dir, output_dir / "convert.log")
        publish_file(staged, artifact)
    else:
        from tanuki_pipelines.quantize.compress import compress

        artifact = output_dir / "checkpoint"
        with staging(artifact) as staged:
            compress(source, staged, build_recipe(config, is_moe(model_config)),
                     calibration if needs_calibration(config) else [], config.dtype,
                     config.calibration.max_seq_length)
    print(format_progress(1, STEPS), flush=True)

    from tanuki_pipelines.quantize.score import score_llama_cpp, score_transformers, score_vllm

    source_scores = score_transformers(source, ids, device)
    print(format_progress(2, STEPS), flush=True)
    if config.scheme == "GGUF":
        quantized_scores = score_llama_cpp(artifact, ids, max_model_len)
    else:
        quantized_scores = score_vllm(artifact, ids, config.dtype, max_model_len, on_gpu)
    print(format_progress(3, STEPS), flush=True)
    quality = compare(source_scores, quantized_scores)
    record_quality(quality, config, output_dir)
    failure = gate_failure(quality, config.gate.threshold)
    if failure:
        raise BadInputError(failure)
    return {"checkpoint": str(artifact), "scheme": config.scheme,
            "format": "gguf" if config.scheme == "GGUF" else "compressed-tensors",
            "dtype": config.dtype, "gguf_type": config.gguf_type if config.scheme == "GGUF" else None,
            "size_bytes": size_on_disk(artifact), "source_size_bytes": size_on_disk(source),
            "quality": str(output_dir / "quality.json"), "agreement": round(quality.agreement, 6)}


def record_quality(quality: Quality, config: QuantizeConfig, output_dir: Path) -> None:
    from tanuki_pipelines.publish import write_durable

    record = {**quality.as_dict(), "threshold": config.gate.threshold, "scheme": config.scheme,
              "passed": gate_failure(quality, config.gate.threshold) is None}
    write_durable(output_dir / "quality.json", json.dumps(record, indent=2) + "\n")
