"""``tanuki quantize`` refuses, before it loads the model or calibrates, what it cannot do (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight_fixtures import MIXTRAL, assert_refused, jsonl, never, problems_of, stand_in_checkpoint
from tanuki_pipelines.preflight import Hardware


@pytest.fixture
def setup(tmp_path: Path, debug_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr("tanuki_pipelines.quantize.run.quantize", never("quantization"))
    monkeypatch.setattr("tanuki_pipelines.preflight.Hardware.here", staticmethod(lambda: Hardware(gpus=0)))
    return {"model": stand_in_checkpoint(tmp_path / "model", debug_tokenizer_dir),
            "moe": stand_in_checkpoint(tmp_path / "moe", debug_tokenizer_dir, **MIXTRAL),
            "texts": jsonl(tmp_path / "texts.jsonl", [{"text": "吾輩は猫である。"}] * 4)}


def recipe(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    return {"source": str(paths["model"]), "scheme": "W8A8", "calibration": {"path": str(paths["texts"])}, **fields}


def _config(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    config = json.loads((paths["model"] / "config.json").read_text())
    (paths["model"] / "config.json").write_text(json.dumps({**config, **fields}))
    return recipe(paths)


BAD: list[tuple[str, Callable[[dict[str, Path]], dict[str, Any]], str]] = [
    ("source missing", lambda p: recipe(p, source=str(p["model"].parent / "nowhere")), "source: no such file or directory"),
    ("source not set", lambda p: {**recipe(p), "source": None}, "source: not set"),
    ("source is a file", lambda p: recipe(p, source=str(p["texts"])), "source: "),
    ("FP8 on CPU", lambda p: recipe(p, scheme="FP8"), "scheme: FP8 needs a GPU"),
    ("W4A16 in float32 on CPU", lambda p: recipe(p, scheme="W4A16", dtype="float32"), "dtype: W4A16 on the CPU"),
    ("W4A16 width not a group multiple", lambda p: _config(p, intermediate_size=344) | {"scheme": "W4A16"},
     "intermediate_size is 344"),
    ("W8A8 widths the CPU int8 packing cannot take", lambda p: _config(p, intermediate_size=520),
     "gate_up_proj is 1040 × 128"),
    ("W8A8 in float32 on CPU", lambda p: recipe(p, dtype="float32"), "dtype: W8A8 on the CPU"),
    ("experts on a dense model", lambda p: recipe(p, quantize_experts=True), "quantize_experts: the model has no experts"),
    ("quantized experts on CPU", lambda p: recipe(p, source=str(p["moe"]), quantize_experts=True),
     "quantize_experts: vLLM's CPU backend has no quantized-MoE kernel"),
    ("calibration missing", lambda p: recipe(p, calibration={"path": str(p["texts"].parent / "none.jsonl")}),
     "calibration.path: no such file"),
    ("calibration without text", lambda p: recipe(p, calibration={"path": str(jsonl(p["texts"].parent / "x.jsonl",
                                                                                   [{"id": 1}] * 3))}),
     'no string "text" and no "messages"'),
    ("calibration directory without JSONL", lambda p: recipe(p, calibration={"path": str(p["model"])}),
     "holds no outputs.json dataset"),
    ("cuda without a GPU", lambda p: recipe(p, device="cuda"), "device: cuda but the pod has no GPU"),
    ("unknown GGUF type", lambda p: recipe(p, scheme="GGUF", gguf_type="q3_xyz"), "gguf_type: 'q3_xyz'"),
    ("architecture vLLM lacks", lambda p: _config(p, architectures=["NoSuchForCausalLM"]),
     "source: vLLM has no model class"),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[row[0] for row in BAD])
def test_quantize_refuses_before_work(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      case: str, make: Callable[[dict[str, Path]], dict[str, Any]],
                                      expected: str) -> None:
    assert_refused(tmp_path, capsys, "quantize", make(setup), expected)


def test_good_recipes_pass_the_preflight(setup: dict[str, Path], tmp_path: Path) -> None:
    from tanuki_pipelines.quantize.config import QuantizeConfig

    for fields in ({}, {"scheme": "W4A16"}, {"scheme": "GGUF"}, {"source": str(setup["moe"])}):
        assert problems_of(QuantizeConfig, recipe(setup, **fields), tmp_path) == []
    assert problems_of(QuantizeConfig, recipe(setup, scheme="FP8"), tmp_path, gpus=1) == []
