"""``tanuki upcycle`` refuses, before it reads any weight, what it cannot do (exit 2, field named)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight_fixtures import MIXTRAL, assert_refused, never, problems_of, stand_in_checkpoint


@pytest.fixture
def setup(tmp_path: Path, debug_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr("tanuki_pipelines.upcycle.convert.upcycle", never("upcycling"))
    return {"model": stand_in_checkpoint(tmp_path / "model", debug_tokenizer_dir),
            "moe": stand_in_checkpoint(tmp_path / "moe", debug_tokenizer_dir, **MIXTRAL),
            "tokenizer": debug_tokenizer_dir}


def recipe(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    return {"source": str(paths["model"]), "num_experts": 4, "top_k": 2, **fields}


def _config(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    config = json.loads((paths["model"] / "config.json").read_text())
    (paths["model"] / "config.json").write_text(json.dumps({**config, **fields}))
    return recipe(paths)


def _broken_config(paths: dict[str, Path]) -> dict[str, Any]:
    (paths["model"] / "config.json").write_text("{not json")
    return recipe(paths)


def _no_weights(paths: dict[str, Path]) -> dict[str, Any]:
    (paths["model"] / "model.safetensors").unlink()
    return recipe(paths)


BAD: list[tuple[str, Callable[[dict[str, Path]], dict[str, Any]], str]] = [
    ("source missing", lambda p: recipe(p, source=str(p["model"].parent / "nowhere")), "source: no such file or directory"),
    ("source not set", lambda p: {**recipe(p), "source": None}, "source: not set"),
    ("source is a file", lambda p: recipe(p, source=str(p["model"] / "config.json")), "source: "),
    ("source is a tokenizer", lambda p: recipe(p, source=str(p["tokenizer"])), "has no readable config.json"),
    ("config.json not JSON", _broken_config, "has no readable config.json"),
    ("source without weights", _no_weights, "no weights"),
    ("source already MoE", lambda p: recipe(p, source=str(p["moe"])), "already a Mixture-of-Experts"),
    ("source not Llama", lambda p: _config(p, model_type="gpt2"), "model_type 'gpt2'"),
    ("more experts per token than experts", lambda p: recipe(p, num_experts=2, top_k=4), "top_k (4) exceeds num_experts (2)"),
    ("bad shard size", lambda p: recipe(p, max_shard_size="lots"), "max_shard_size"),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[row[0] for row in BAD])
def test_upcycle_refuses_before_work(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     case: str, make: Callable[[dict[str, Path]], dict[str, Any]],
                                     expected: str) -> None:
    assert_refused(tmp_path, capsys, "upcycle", make(setup), expected)


def test_a_good_recipe_passes_the_preflight(setup: dict[str, Path], tmp_path: Path) -> None:
    from tanuki_pipelines.upcycle.config import UpcycleConfig

    assert problems_of(UpcycleConfig, recipe(setup), tmp_path) == []
