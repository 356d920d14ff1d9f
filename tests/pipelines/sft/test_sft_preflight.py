"""``tanuki sft`` refuses, before any tokenizer load or training, what it cannot do (exit 2, field named)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight_fixtures import MIXTRAL, assert_refused, jsonl, never, problems_of, stand_in_checkpoint

GOOD = {"messages": [{"role": "user", "content": "こんにちは"}, {"role": "assistant", "content": "はい"}]}


@pytest.fixture
def setup(tmp_path: Path, debug_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr("tanuki_pipelines.pretrain.main.run_training", never("training"))
    monkeypatch.setattr("tanuki_pipelines.sft.train.chat_tokenizer", never("tokenizer load"))
    return {"model": stand_in_checkpoint(tmp_path / "model", debug_tokenizer_dir),
            "tokenizer": debug_tokenizer_dir,
            "data": jsonl(tmp_path / "chat.jsonl", [GOOD] * 3)}


def recipe(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    return {"model": str(paths["model"]), "dataset": str(paths["data"]), "train": {"max_length": 512}, **fields}


def _no_template(paths: dict[str, Path]) -> dict[str, Any]:
    settings = json.loads((paths["model"] / "tokenizer_config.json").read_text())
    settings.pop("chat_template", None)
    (paths["model"] / "tokenizer_config.json").write_text(json.dumps(settings))
    (paths["model"] / "chat_template.jinja").unlink(missing_ok=True)
    return recipe(paths)


def _small_vocab(paths: dict[str, Path]) -> dict[str, Any]:
    config = json.loads((paths["model"] / "config.json").read_text())
    (paths["model"] / "config.json").write_text(json.dumps({**config, "vocab_size": 1000}))
    return recipe(paths)


def _moe_field_on_dense(paths: dict[str, Path]) -> dict[str, Any]:
    return recipe(paths, router_aux_loss_coef=0.01)


def _no_weights(paths: dict[str, Path]) -> dict[str, Any]:
    (paths["model"] / "model.safetensors").unlink()
    return recipe(paths)


BAD: list[tuple[str, Callable[[dict[str, Path]], dict[str, Any]], str]] = [
    ("model missing", lambda p: recipe(p, model=str(p["model"].parent / "nowhere")), "model: no such file or directory"),
    ("model not set", lambda p: {**recipe(p), "model": None}, "model: not set"),
    ("model is a file", lambda p: recipe(p, model=str(p["data"])), "is a file, not an HF checkpoint"),
    ("model is a tokenizer dir", lambda p: recipe(p, model=str(p["tokenizer"])), "has no readable config.json"),
    ("model without weights", _no_weights, "no weights"),
    ("dataset missing", lambda p: recipe(p, dataset=str(p["data"].parent / "none.jsonl")), "dataset: no such file"),
    ("dataset is a directory", lambda p: recipe(p, dataset=str(p["model"])), "dataset: "),
    ("dataset without messages", lambda p: recipe(p, dataset=str(jsonl(p["data"].parent / "t.jsonl", [{"text": "x"}] * 3))),
     "dataset: none of the first 3 records"),
    ("dataset not JSON", lambda p: recipe(p, dataset=str(jsonl(p["data"].parent / "n.jsonl", ["{oops"] * 2))),
     "n.jsonl:1: not JSON"),
    ("dataset empty", lambda p: recipe(p, dataset=str(jsonl(p["data"].parent / "e.jsonl", []))), "holds no record"),
    ("no assistant turn", lambda p: recipe(p, dataset=str(jsonl(p["data"].parent / "u.jsonl", [
        {"messages": [{"role": "user", "content": "x"}]}]))), "no assistant turn"),
    ("sequence too long", lambda p: recipe(p, train={"max_length": 4096}), "train.max_length: 4096 is longer"),
    ("tokenizer without chat template", _no_template, "no chat template"),
    ("vocab smaller than tokenizer", _small_vocab, "vocab_size: 1000 but the tokenizer"),
    ("router loss on a dense model", _moe_field_on_dense, "router_aux_loss_coef: the model has no experts"),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[row[0] for row in BAD])
def test_sft_refuses_before_work(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 case: str, make: Callable[[dict[str, Path]], dict[str, Any]], expected: str) -> None:
    assert_refused(tmp_path, capsys, "sft", make(setup), expected)


def test_every_problem_is_named_at_once(setup: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    err = assert_refused(tmp_path, capsys, "sft", recipe(setup, dataset=str(tmp_path / "none.jsonl"),
                                                         train={"max_length": 4096}), "dataset: no such file")
    assert "train.max_length" in err


def test_a_good_recipe_passes_the_preflight(setup: dict[str, Path], debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    from tanuki_pipelines.sft.config import SFTConfig

    assert problems_of(SFTConfig, recipe(setup), tmp_path) == []
    moe = stand_in_checkpoint(tmp_path / "moe", debug_tokenizer_dir, **MIXTRAL)
    assert problems_of(SFTConfig, recipe(setup, model=str(moe), router_aux_loss_coef=0.01), tmp_path) == []
