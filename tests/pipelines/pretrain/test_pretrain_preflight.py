"""``tanuki pretrain`` refuses, before it trains a tokenizer, builds a token store or starts
DeepSpeed, what it cannot do (exit 2, field named)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight_fixtures import MIXTRAL, assert_refused, jsonl, never, problems_of, stand_in_checkpoint


@pytest.fixture
def setup(tmp_path: Path, debug_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr("tanuki_pipelines.pretrain.prepare.prepare", never("tokenizer training / token store"))
    monkeypatch.setattr("tanuki_pipelines.pretrain.main.run_training", never("training"))
    (tmp_path / "empty").mkdir()
    return {"tokenizer": debug_tokenizer_dir, "empty": tmp_path / "empty",
            "model": stand_in_checkpoint(tmp_path / "model", debug_tokenizer_dir),
            "moe": stand_in_checkpoint(tmp_path / "moe", debug_tokenizer_dir, **MIXTRAL),
            "ja": jsonl(tmp_path / "ja.jsonl", [{"text": "吾輩は猫である。"}] * 3)}


def recipe(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    return {"tokenizer": {"path": str(paths["tokenizer"])}, "model": {"preset": "debug"},
            "train": {"steps": 2, "seq_len": 128}, "data": {"sources": [{"name": "ja", "path": str(paths["ja"])}]},
            **fields}


BAD: list[tuple[str, Callable[[dict[str, Path]], dict[str, Any]], str]] = [
    ("tokenizer missing", lambda p: recipe(p, tokenizer={"path": str(p["empty"] / "nowhere")}),
     "tokenizer.path: no such file or directory"),
    ("tokenizer dir without tokenizer", lambda p: recipe(p, tokenizer={"path": str(p["empty"])}),
     "tokenizer.path: no tokenizer in"),
    ("vocabulary larger than the model's", lambda p: recipe(p, model={"preset": "debug", "vocab_size": 1000}),
     "model.vocab_size: 1000 but the tokenizer"),
    ("tokenizer to train larger than the model's", lambda p: recipe(p, model={"preset": "debug", "vocab_size": 1000},
        tokenizer={"train": {"sources": [{"name": "ja", "path": str(p["ja"])}], "vocab_size": 4000}}),
     "model.vocab_size: 1000 but tokenizer.train.vocab_size is 4000"),
    ("tokenizer corpus missing", lambda p: recipe(p, tokenizer={"train": {"sources": [
        {"name": "ja", "path": str(p["empty"] / "none.jsonl")}], "vocab_size": 4000}}),
     "tokenizer.train.sources[0] (ja).path"),
    ("sequence longer than positions", lambda p: recipe(p, train={"steps": 2, "seq_len": 4096}),
     "train.seq_len (4096) exceeds model.max_position_embeddings (256)"),
    ("corpus missing", lambda p: recipe(p, data={"sources": [{"name": "ja", "path": str(p["empty"] / "x.jsonl")}]}),
     "data.sources[0] (ja).path"),
    ("corpus without the text field", lambda p: recipe(p, data={"sources": [
        {"name": "ja", "path": str(p["ja"]), "text_field": "body"}]}), "no string 'body' (text_field)"),
    ("token store missing", lambda p: recipe(p, data={"sources": [{"name": "ja"}], "store": str(p["empty"] / "s")}),
     "data.store: no such file or directory"),
    ("init_from missing", lambda p: recipe(p, init_from=str(p["empty"] / "ckpt")), "init_from: no such file"),
    ("init_from of another shape", lambda p: recipe(p, init_from=str(p["moe"])), "init_from: "),
    ("init_from not a checkpoint", lambda p: recipe(p, init_from=str(p["tokenizer"])), "has no readable config.json"),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[row[0] for row in BAD])
def test_pretrain_refuses_before_work(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      case: str, make: Callable[[dict[str, Path]], dict[str, Any]],
                                      expected: str) -> None:
    assert_refused(tmp_path, capsys, "pretrain", make(setup), expected)


def test_the_same_preflight_runs_in_each_rank_of_a_pod(setup: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """On a cluster each pod starts torchrun directly: the rank refuses, naming the field, exit 2."""
    import yaml

    from tanuki_pipelines.pretrain.train import main as rank_main

    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe(setup, tokenizer={"path": str(tmp_path / "nowhere")})))
    assert rank_main(["--config", str(config), "--output-dir", str(tmp_path / "out")]) == 2
    assert "tokenizer.path: no such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_good_recipes_pass_the_preflight(setup: dict[str, Path], tmp_path: Path) -> None:
    from tanuki_pipelines.pretrain.config import PretrainConfig

    for fields in ({}, {"init_from": str(setup["model"])}):
        assert problems_of(PretrainConfig, recipe(setup, **fields), tmp_path) == []
