"""``tanuki tokenize`` refuses, before planning shards, what it cannot do (exit 2, field named)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight_fixtures import assert_refused, jsonl, never, problems_of


@pytest.fixture
def setup(tmp_path: Path, debug_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr("tanuki_pipelines.tokenize.build.build_store", never("tokenization"))
    (tmp_path / "empty").mkdir()
    return {"tokenizer": debug_tokenizer_dir, "empty": tmp_path / "empty",
            "ja": jsonl(tmp_path / "ja.jsonl", [{"text": "吾輩は猫である。"}] * 3),
            "en": jsonl(tmp_path / "en.jsonl", [{"text": "I am a cat."}] * 3)}


def recipe(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    return {"tokenizer": str(paths["tokenizer"]),
            "sources": [{"name": "ja", "path": str(paths["ja"])}, {"name": "en", "path": str(paths["en"])}], **fields}


def _source(paths: dict[str, Path], **source: Any) -> dict[str, Any]:
    return recipe(paths, sources=[{"name": "ja", **source}])


def _unreadable_tokenizer(paths: dict[str, Path]) -> dict[str, Any]:
    broken = paths["empty"].parent / "broken-tokenizer"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{not a tokenizer")
    return recipe(paths, tokenizer=str(broken))


def _gzip_without_text(paths: dict[str, Path]) -> dict[str, Any]:
    path = paths["empty"].parent / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"body": "x"}\n'))
    return _source(paths, path=str(path))


BAD: list[tuple[str, Callable[[dict[str, Path]], dict[str, Any]], str]] = [
    ("tokenizer missing", lambda p: recipe(p, tokenizer=str(p["empty"] / "nowhere")), "tokenizer: no such file or directory"),
    ("tokenizer not set", lambda p: {**recipe(p), "tokenizer": None}, "tokenizer: not set"),
    ("tokenizer dir without tokenizer", lambda p: recipe(p, tokenizer=str(p["empty"])), "tokenizer: no tokenizer in"),
    ("tokenizer is a file", lambda p: recipe(p, tokenizer=str(p["ja"])), "tokenizer: no tokenizer in"),
    ("tokenizer file unreadable", _unreadable_tokenizer, "is not a readable tokenizer"),
    ("source missing", lambda p: _source(p, path=str(p["empty"] / "none.jsonl")), "path: no such file or directory"),
    ("source not set", lambda p: _source(p), "sources[0] (ja).path: not set"),
    ("source directory without corpus files", lambda p: _source(p, path=str(p["empty"])), "no corpus file"),
    ("glob matching nothing", lambda p: _source(p, path=str(p["empty"] / "*.jsonl")), "no file matches"),
    ("JSONL without the text field", lambda p: _source(p, path=str(p["ja"]), text_field="body"),
     "no string 'body' (text_field)"),
    ("JSONL that is not JSON", lambda p: _source(p, path=str(jsonl(p["empty"].parent / "n.jsonl", ["{x"] * 2))),
     "n.jsonl:1: not JSON"),
    ("a name used twice", lambda p: recipe(p, sources=[{"name": "ja", "path": str(p["ja"])},
                                                       {"name": "ja", "path": str(p["en"])}]),
     "sources: Value error, two sources share a name"),
    ("gzipped JSONL without the text field", _gzip_without_text, "no string 'text' (text_field)"),
    ("unknown format", lambda p: _source(p, path=str(p["ja"]), format="csv"), "format"),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[row[0] for row in BAD])
def test_tokenize_refuses_before_work(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      case: str, make: Callable[[dict[str, Path]], dict[str, Any]],
                                      expected: str) -> None:
    assert_refused(tmp_path, capsys, "tokenize", make(setup), expected)


def test_a_good_recipe_passes_the_preflight(setup: dict[str, Path], tmp_path: Path) -> None:
    from tanuki_pipelines.tokenize.config import TokenizeConfig

    assert problems_of(TokenizeConfig, recipe(setup), tmp_path) == []
