"""Verdicts are read exactly as written, or counted as unreadable."""

from __future__ import annotations

import re

import pytest

from tanuki_pipelines.eval.judging import (
    battle_winner,
    choice_verdict,
    grade_messages,
    parse_choice,
    parse_rating,
    rating_verdict,
)


@pytest.mark.parametrize(("text", "score"), [
    ("理由…… 評価: [[7]]", 7.0), ("[[7.5]]", 7.5), ("Rating: [[10]]", 10.0), ("評価は7です", None),
    ("[[3]] と思ったが [[8]]", None), ("[[8]] ... 最終的に [[8]]", 8.0), ("[[0]]", None), ("[[11]]", None), ("", None),
])
def test_rating(text: str, score: float | None) -> None:
    assert parse_rating(text) == score


@pytest.mark.parametrize(("text", "choice"), [
    ("Aの方が具体的。[[A]]", "A"), ("[[C]]", "C"), ("[[A]] いや [[B]]", None), ("引き分け", None)])
def test_choice(text: str, choice: str | None) -> None:
    assert parse_choice(text) == choice


@pytest.mark.parametrize(("first", "second", "winner"), [
    ("A", "B", "model_a"), ("B", "A", "model_b"), ("C", "C", "tie"), ("A", "A", "tie"), ("A", "C", "tie"),
    (None, "A", None)])
def test_both_orders_must_agree(first, second, winner) -> None:
    assert battle_winner(first, second) == winner


def test_reference_is_shown_for_math_reasoning_and_coding_only() -> None:
    math = grade_messages("math", ["1+1?", "2+2?"], ["2", "4"], 2, ["2", "4"])
    writing = grade_messages("writing", ["書いて", "直して"], ["a", "b"], 1, ["ref"])
    assert "参考解答（2回目）\n4" in math[1]["content"] and "2回目のアシスタント" in math[1]["content"]
    assert "参考解答" not in writing[1]["content"]


def test_constrained_verdicts_are_readable() -> None:
    assert parse_rating("短い理由 評価: [[9]]") == 9 and re.fullmatch(rating_verdict(10), "短い理由 評価: [[9]]")
    assert re.fullmatch(choice_verdict(5), "B良い[[B]]") and parse_choice("B良い[[B]]") == "B"
