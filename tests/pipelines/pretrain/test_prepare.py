"""Pretraining from a token store built ahead (``data.store``, what a TokenizeJob publishes): the
store's own tokenizer, the same blocks as building the store in the run, and a store of another
tokenizer, without its tokenizer or without a source refused by name before any step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import DataSource
from tanuki_pipelines.pretrain import data
from tanuki_pipelines.pretrain.config import PretrainConfig
from tanuki_pipelines.pretrain.prepare import DATA_CACHE_DIR, prepare
from tanuki_pipelines.tokenize.build import build_store, tokenizer_fingerprint
from tanuki_pipelines.tokenize.config import TokenizeConfig

CORPUS = Path(__file__).resolve().parents[3] / "pipelines" / "recipes" / "debug" / "corpus"
SEQ_LEN = 64


def recipe(**data_fields: object) -> PretrainConfig:
    return PretrainConfig.model_validate({"model": {"preset": "debug"}, "train": {"steps": 1, "seq_len": SEQ_LEN},
                                          **({"tokenizer": data_fields.pop("tokenizer")} if "tokenizer" in data_fields
                                             else {}), "data": data_fields})


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, debug_tokenizer_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("tokens") / "store"
    sources = [DataSource(name=name, path=CORPUS / f"{name}.jsonl") for name in ("ja", "en")]
    build_store(TokenizeConfig(sources=sources, tokenizer=debug_tokenizer_dir), out, cpus=1)
    return out


def test_a_store_built_ahead_trains_with_its_own_tokenizer_on_the_blocks_a_run_builds(
        store: Path, debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    config = recipe(sources=[{"name": "ja"}, {"name": "en"}], store=str(store))
    tokenizer, used = prepare(config, tmp_path / "ahead", cpus=1)
    assert used == store and tokenizer == store / "tokenizer"
    assert tokenizer_fingerprint(tokenizer) == tokenizer_fingerprint(debug_tokenizer_dir)
    assert data.current_store(tmp_path / "ahead" / DATA_CACHE_DIR) == store  # what the ranks open
    assert not list((tmp_path / "ahead" / DATA_CACHE_DIR).glob("store-*"))  # nothing built again

    in_run = recipe(tokenizer={"path": str(debug_tokenizer_dir)},
                    sources=[{"name": name, "path": str(CORPUS / f"{name}.jsonl")} for name in ("ja", "en")])
    _, built = prepare(in_run, tmp_path / "in-run", cpus=1)
    assert built != store
    for ahead, own in zip(data.open_packed(store, config.data.sources, SEQ_LEN),
                          data.open_packed(built, in_run.data.sources, SEQ_LEN), strict=True):
        assert len(ahead) == len(own) > 0
        assert all(np.array_equal(ahead[i], own[i]) for i in range(len(own)))


def test_a_store_of_another_tokenizer_is_refused_naming_both(store: Path, debug_tokenizer_dir: Path,
                                                             tmp_path: Path) -> None:
    other = tmp_path / "other-tokenizer"
    shutil.copytree(debug_tokenizer_dir, other)
    settings = json.loads((other / "tokenizer_config.json").read_text())
    (other / "tokenizer_config.json").write_text(json.dumps({**settings, "model_max_length": 77}))
    config = recipe(tokenizer={"path": str(other)}, sources=[{"name": "ja"}], store=str(store))
    with pytest.raises(BadInputError, match=r"tokenizer.path: .*other-tokenizer is not the tokenizer data.store"):
        prepare(config, tmp_path / "run", cpus=1)


def test_a_store_without_its_tokenizer_or_a_source_is_refused_by_name(store: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(store, bare)
    shutil.rmtree(bare / "tokenizer")
    with pytest.raises(BadInputError, match="keeps no copy of its tokenizer; set tokenizer.path"):
        prepare(recipe(sources=[{"name": "ja"}], store=str(bare)), tmp_path / "a", cpus=1)
    with pytest.raises(BadInputError, match="the token store has no source synth"):
        prepare(recipe(sources=[{"name": "ja"}, {"name": "synth"}], store=str(store)), tmp_path / "b", cpus=1)
    with pytest.raises(BadInputError, match="not a finished token store"):
        prepare(recipe(sources=[{"name": "ja"}], store=str(tmp_path)), tmp_path / "c", cpus=1)
    with pytest.raises(BadInputError, match="tokenizer: set tokenizer.path or tokenizer.train"):
        prepare(recipe(sources=[{"name": "ja", "path": str(CORPUS / "ja.jsonl")}]), tmp_path / "d", cpus=1)
