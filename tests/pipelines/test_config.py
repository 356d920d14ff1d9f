"""Recipe loading: unknown keys, wrong types, impossible shapes and bad overrides name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import load_recipe
from tanuki_pipelines.pretrain.config import PretrainConfig

BASE = {
    "tokenizer": {"path": "tok"},
    "model": {"preset": "debug"},
    "train": {"steps": 10, "seq_len": 64},
    "data": {"sources": [{"name": "ja", "path": "ja.jsonl"}]},
}


def write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def error_of(tmp_path: Path, recipe: dict, overrides: list[str] | None = None) -> str:
    with pytest.raises(BadInputError) as caught:
        load_recipe(PretrainConfig, write(tmp_path, recipe), overrides)
    return str(caught.value)


def test_valid_recipe_resolves_paths_against_recipe_dir(tmp_path: Path) -> None:
    config = load_recipe(PretrainConfig, write(tmp_path, BASE))
    assert config.data.sources[0].path == (tmp_path / "ja.jsonl").resolve()
    assert config.tokenizer.path == (tmp_path / "tok").resolve()
    assert config.model.hidden_size == 128  # from the debug preset


def test_override_paths_resolve_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_recipe(PretrainConfig, write(tmp_path, BASE),
                         ["tokenizer.path=mytok", "train.steps=7", "data.sources.0.weight=2.5"])
    assert config.tokenizer.path == (elsewhere / "mytok").resolve()
    assert config.train.steps == 7
    assert config.data.sources[0].weight == 2.5
    assert config.data.sources[0].path == (tmp_path / "ja.jsonl").resolve()


def test_unknown_key_names_the_field(tmp_path: Path) -> None:
    message = error_of(tmp_path, {**BASE, "train": {**BASE["train"], "stpes": 3}})
    assert "train.stpes" in message and "Extra inputs are not permitted" in message


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    assert "train.steps" in error_of(tmp_path, {**BASE, "train": {"steps": "many"}})


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ({"preset": "debug", "num_attention_heads": 3}, ["num_attention_heads", "hidden_size"]),
        ({"preset": "debug", "num_key_value_heads": 3}, ["num_key_value_heads", "num_attention_heads"]),
    ],
)
def test_impossible_shape_names_the_fields(tmp_path: Path, model: dict, words: list[str]) -> None:
    message = error_of(tmp_path, {**BASE, "model": model})
    assert all(word in message for word in words), message


def test_phase_with_unknown_source(tmp_path: Path) -> None:
    data = {**BASE["data"], "phases": [{"at": 0.0, "weights": {"ja": 1, "zz": 1}}]}
    message = error_of(tmp_path, {**BASE, "data": data})
    assert "phases.0.weights" in message and "zz" in message


def test_seq_len_longer_than_context(tmp_path: Path) -> None:
    assert "train.seq_len" in error_of(tmp_path, {**BASE, "train": {"steps": 1, "seq_len": 4096}})


def test_tokenizer_has_one_source_at_most_and_one_before_work(tmp_path: Path) -> None:
    from tanuki_pipelines.pretrain.prepare import prepare

    both = {"path": "tok", "train": {"sources": [{"name": "ja", "path": "ja.jsonl"}], "vocab_size": 300}}
    assert "set only one of tokenizer.path and tokenizer.train" in error_of(tmp_path, {**BASE, "tokenizer": both})
    neither = load_recipe(PretrainConfig, write(tmp_path, {**BASE, "tokenizer": {}}))  # a data.store may give one
    (tmp_path / "ja.jsonl").write_text('{"text": "a"}\n')
    with pytest.raises(BadInputError, match="tokenizer: set tokenizer.path or tokenizer.train"):
        prepare(neither, tmp_path / "out", cpus=1)


def test_bad_override_names_the_key(tmp_path: Path) -> None:
    assert "train.nope" in error_of(tmp_path, BASE, ["train.nope=1"])
    assert "data.sources.5" in error_of(tmp_path, BASE, ["data.sources.5.weight=1"])
    assert "KEY=VALUE" in error_of(tmp_path, BASE, ["train.steps"])


def test_missing_and_malformed_recipe_files(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="recipe file not found"):
        load_recipe(PretrainConfig, tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(BadInputError, match="must be a YAML mapping"):
        load_recipe(PretrainConfig, bad)
