"""``tanuki eval`` refuses, before it asks any model, what it cannot do (exit 2, field named)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from preflight_fixtures import assert_refused, jsonl, never, problems_of

A = {"base_url": "http://127.0.0.1:9/v1", "model": "a"}
B = {"base_url": "http://127.0.0.1:9/v1", "model": "b"}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setattr("tanuki_pipelines.eval.grade.grade", never("grading"))
    monkeypatch.setattr("tanuki_pipelines.eval.arena.battles", never("battles"))
    monkeypatch.setattr("tanuki_pipelines.eval.harness.run_harness", never("the harness"))
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    monkeypatch.delenv("NO_SUCH_KEY_FILE", raising=False)
    (tmp_path / "empty").mkdir()
    return {"empty": tmp_path / "empty", "prompts": jsonl(tmp_path / "p.jsonl", [{"prompt": "日本の首都は?"}])}


def recipe(mode: str, **fields: Any) -> dict[str, Any]:
    return {"mode": mode, "targets": [A, B], **fields}


BAD: list[tuple[str, Callable[[dict[str, Path]], dict[str, Any]], str]] = [
    ("grade without targets", lambda p: {"mode": "grade"}, "targets: no model to evaluate (mode grade)"),
    ("harness without targets", lambda p: {"mode": "harness"}, "targets: no model to evaluate (mode harness)"),
    ("arena of one model", lambda p: {"mode": "arena", "targets": [A]}, "an arena needs at least two models"),
    ("two targets of one name", lambda p: recipe("grade", targets=[A, A]), "two targets share a name"),
    ("API key not set", lambda p: recipe("grade", targets=[A, {**B, "api_key_env": "NO_SUCH_KEY"}]),
     "targets[1].api_key_env: neither $NO_SUCH_KEY"),
    ("questions missing", lambda p: recipe("grade", grade={"questions": str(p["empty"] / "q.jsonl")}),
     "grade.questions: no such file or directory"),
    ("arena prompts missing", lambda p: recipe("arena", arena={"prompts": str(p["empty"] / "p.jsonl")}),
     "arena.prompts: no such file or directory"),
    ("arena prompts without prompts", lambda p: recipe("arena", arena={"prompts": str(jsonl(
        p["empty"] / "x.jsonl", [{"text": "x"}]))}), 'no string "prompt" and no "turns" list'),
    ("battle log missing", lambda p: recipe("arena", arena={"battles": [str(p["empty"] / "b.jsonl")]}),
     "arena.battles[0]: no such file or directory"),
    ("vote export missing", lambda p: recipe("arena", arena={"votes": str(p["empty"] / "v.jsonl"),
                                                             "vote_codes": {"1": "model_a"}}),
     "arena.votes: no such file or directory"),
    ("votes with no codes", lambda p: recipe("arena", arena={"votes": str(p["prompts"]), "vote_codes": {}}),
     "vote_codes"),
    ("harness task dir missing", lambda p: recipe("harness", harness={"task_dir": str(p["empty"] / "tasks")}),
     "harness.task_dir: no such file or directory"),
]


@pytest.mark.parametrize(("case", "make", "expected"), BAD, ids=[row[0] for row in BAD])
def test_eval_refuses_before_work(setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  case: str, make: Callable[[dict[str, Path]], dict[str, Any]], expected: str) -> None:
    assert_refused(tmp_path, capsys, "eval", make(setup), expected)


def test_good_recipes_pass_the_preflight(setup: dict[str, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tanuki_pipelines.eval.config import EvalConfig

    monkeypatch.setenv("NO_SUCH_KEY", "k")
    for raw in (recipe("grade"), recipe("arena", arena={"prompts": str(setup["prompts"])}),
                recipe("grade", targets=[A, {**B, "api_key_env": "NO_SUCH_KEY"}])):
        assert problems_of(EvalConfig, raw, tmp_path) == []
