"""``tanuki synth`` refuses, before planning or starting vLLM, what it cannot do (exit 2, field named)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight_fixtures import assert_refused, jsonl, never, problems_of, stand_in_checkpoint


@pytest.fixture
def setup(tmp_path: Path, debug_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr("tanuki_pipelines.synth.main.generate", never("generation"))
    return {"model": stand_in_checkpoint(tmp_path / "model", debug_tokenizer_dir),
            "docs": jsonl(tmp_path / "docs.jsonl", [{"text": "吾輩は猫である。名前はまだ無い。"}] * 3),
            "personas": jsonl(tmp_path / "personas.jsonl", [{"persona": "a teacher"}])}


def recipe(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    return {"documents": [{"name": "ja", "path": str(paths["docs"])}],
            "generator": {"path": str(paths["model"]), "max_model_len": 1024}, **fields}


def _config(paths: dict[str, Path], **fields: Any) -> dict[str, Any]:
    config = json.loads((paths["model"] / "config.json").read_text())
    (paths["model"] / "config.json").write_text(json.dumps({**config, **fields}))
    return recipe(paths)


def _docs(paths: dict[str, Path], **source: Any) -> dict[str, Any]:
    return recipe(paths, documents=[{"name": "ja", **source}])


BAD: list[tuple[str, Callable[[dict[str, Path]], dict[str, Any]], str]] = [
    ("generator missing", lambda p: recipe(p, generator={"path": str(p["model"].parent / "nonexistent")}),
     "generator.path: no such file or directory"),
    ("generator not set", lambda p: recipe(p, generator={"max_model_len": 1024}), "generator.path: not set"),
    ("generator is a file", lambda p: recipe(p, generator={"path": str(p["docs"])}), "generator.path: "),
    ("generator without config.json", lambda p: recipe(p, generator={"path": str(p["model"].parent)}),
     "has no readable config.json"),
    ("architecture vLLM lacks", lambda p: _config(p, architectures=["NoSuchForCausalLM"]),
     "generator.path: vLLM has no model class"),
    ("context longer than positions", lambda p: recipe(p, generator={"path": str(p["model"]), "max_model_len": 8192}),
     "generator.max_model_len: 8192 is longer"),
    ("tensor parallel not dividing heads", lambda p: recipe(p, generator={"path": str(p["model"]),
                                                                           "max_model_len": 1024,
                                                                           "tensor_parallel_size": 3}),
     "generator.tensor_parallel_size: 3 does not divide"),
    ("documents missing", lambda p: _docs(p, path=str(p["docs"].parent / "none.jsonl")),
     "documents[0] (ja).path: data source 'ja': path: no such file"),
    ("documents glob matching nothing", lambda p: _docs(p, path=str(p["docs"].parent / "*.parquet")),
     "no file matches"),
    ("documents without the text field", lambda p: _docs(p, path=str(p["docs"]), text_field="body"),
     "no string 'body' (text_field)"),
    ("documents not set", lambda p: _docs(p), "documents[0] (ja).path: not set"),
    ("persona file without personas", lambda p: recipe(p, dialogues={"count": 2, "persona_file": str(p["docs"])}),
     'no string "persona"'),
    ("nothing to generate", lambda p: recipe(p, documents=[]), "nothing to generate"),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[row[0] for row in BAD])
def test_synth_refuses_before_work(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   case: str, make: Callable[[dict[str, Path]], dict[str, Any]],
                                   expected: str) -> None:
    assert_refused(tmp_path, capsys, "synth", make(setup), expected)


def test_a_good_recipe_passes_the_preflight(setup: dict[str, Path], tmp_path: Path) -> None:
    from tanuki_pipelines.synth.config import SynthConfig

    good = recipe(setup, dialogues={"count": 2, "persona_file": str(setup["personas"])})
    assert problems_of(SynthConfig, good, tmp_path) == []
