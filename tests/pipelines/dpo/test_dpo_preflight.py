"""``tanuki dpo`` refuses, before generating pairs or training, what it cannot do (exit 2, field named)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight_fixtures import assert_refused, jsonl, never, problems_of, stand_in_checkpoint


@pytest.fixture
def setup(tmp_path: Path, debug_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr("tanuki_pipelines.pretrain.main.run_training", never("training"))
    monkeypatch.setattr("tanuki_pipelines.dpo.main.make_pairs", never("pair generation"))
    monkeypatch.setattr("tanuki_pipelines.sft.train.chat_tokenizer", never("tokenizer load"))
    return {"model": stand_in_checkpoint(tmp_path / "model", debug_tokenizer_dir),
            "prompts": jsonl(tmp_path / "prompts.jsonl", [{"prompt": "日本の首都は?"}] * 3),
            "pairs": jsonl(tmp_path / "pairs.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}] * 3)}


def recipe(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    return {"model": str(paths["model"]), "prompts": str(paths["prompts"]), "train": {"max_length": 512},
            "max_prompt_tokens": 256, "pairs": {"generator": {"max_model_len": 1024}}, **fields}


def _config(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    config = json.loads((paths["model"] / "config.json").read_text())
    (paths["model"] / "config.json").write_text(json.dumps({**config, **fields}))
    return recipe(paths)


BAD: list[tuple[str, Callable[[dict[str, Path]], dict[str, Any]], str]] = [
    ("model missing", lambda p: recipe(p, model=str(p["model"].parent / "nowhere")), "model: no such file or directory"),
    ("model is a file", lambda p: recipe(p, model=str(p["prompts"])), "model: "),
    ("prompts missing", lambda p: recipe(p, prompts=str(p["prompts"].parent / "none.jsonl")), "prompts: no such file"),
    ("prompts not set", lambda p: {**recipe(p), "prompts": None}, "prompts: not set"),
    ("prompts without prompt", lambda p: recipe(p, prompts=str(jsonl(p["prompts"].parent / "t.jsonl", [{"text": "x"}]))),
     "no prompt and no messages"),
    ("prompts ending in an assistant turn", lambda p: recipe(p, prompts=str(jsonl(p["prompts"].parent / "m.jsonl", [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]))), "prompts: "),
    ("ready pairs without chosen", lambda p: recipe(p, generate=False), "no chosen/rejected text"),
    ("sequence too long", lambda p: recipe(p, train={"max_length": 2048}), "train.max_length: 2048 is longer"),
    ("generator context too long", lambda p: recipe(p, pairs={"generator": {"max_model_len": 4096}}),
     "pairs.generator.max_model_len: 4096 is longer"),
    ("tensor parallel not dividing heads", lambda p: recipe(p, pairs={"generator": {"max_model_len": 1024,
                                                                                    "tensor_parallel_size": 3}}),
     "pairs.generator.tensor_parallel_size: 3 does not divide"),
    ("architecture vLLM lacks", lambda p: _config(p, architectures=["NoSuchForCausalLM"]),
     "vLLM has no model class for architectures ['NoSuchForCausalLM']"),
    ("vocab smaller than tokenizer", lambda p: _config(p, vocab_size=100), "vocab_size: 100 but the tokenizer"),
    ("endpoint engine without endpoint", lambda p: recipe(p, pairs={"engine": "endpoint"}), "pairs.endpoint: required"),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[row[0] for row in BAD])
def test_dpo_refuses_before_work(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 case: str, make: Callable[[dict[str, Path]], dict[str, Any]], expected: str) -> None:
    assert_refused(tmp_path, capsys, "dpo", make(setup), expected)


def test_good_recipes_pass_the_preflight(setup: dict[str, Path], tmp_path: Path) -> None:
    from tanuki_pipelines.dpo.config import DPOConfig

    for fields in ({}, {"generate": False, "prompts": str(setup["pairs"])}):
        assert problems_of(DPOConfig, recipe(setup, **fields), tmp_path) == []
