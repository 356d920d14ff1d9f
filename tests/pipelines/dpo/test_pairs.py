"""Pair decisions, table-driven: only verdicts that agree across both orders make a pair."""

from __future__ import annotations

import pytest

from tanuki_pipelines.dpo.pairs import calibrated_record, decide, identical, pair_record, pair_stats, retry_temperatures
from tanuki_pipelines.eval.judging import calibrated_preference, calibrated_winner, verdict_probabilities


@pytest.mark.parametrize(("first", "second", "outcome"), [
    ("理由… [[A]]", "理由… [[B]]", ("kept", 0)),    # answer 0 wins in both orders
    ("[[B]]", "[[A]]", ("kept", 1)),                 # answer 1 wins in both orders
    ("[[C]]", "[[C]]", ("tie", None)),
    ("[[A]]", "[[A]]", ("inconsistent", None)),      # position bias: A both times
    ("[[A]]", "[[C]]", ("inconsistent", None)),
    ("[[A]] いや [[B]]", "[[B]]", ("unparseable", None)),  # several verdicts
    ("どちらも良い", "[[B]]", ("unparseable", None)),       # none
    ("", "[[A]]", ("unparseable", None)),
])
def test_verdicts_in_both_orders(first: str, second: str, outcome: tuple) -> None:
    assert decide(first, second) == outcome


def test_records_and_stats() -> None:
    kept = pair_record("質問", ["良い答え", "悪い答え"], ["[[A]]", "[[B]]"])
    assert kept == {"outcome": "kept", "prompt": "質問", "chosen": "良い答え", "rejected": "悪い答え"}
    swapped = pair_record("質問", ["悪い答え", "良い答え"], ["[[B]]", "[[A]]"])
    assert (swapped["chosen"], swapped["rejected"]) == ("良い答え", "悪い答え")
    tie = pair_record("質問", ["x", "y"], ["[[C]]", "[[C]]"])
    assert tie["outcome"] == "tie" and tie["judgments"] == ["[[C]]", "[[C]]"] and "chosen" not in tie
    assert pair_stats([kept, swapped, tie]) == {"kept": 2, "tie": 1, "inconsistent": 0, "unparseable": 0,
                                                "identical": 0, "no_answers": 0}


def test_identical_answers_are_retried_hotter_up_to_the_cap() -> None:
    assert identical("東京です。", " 東京です。\n") and not identical("東京です。", "大阪です。")
    assert retry_temperatures(1.0, 0.1, 1.3) == [1.0, 1.1, 1.2, 1.3]
    assert retry_temperatures(1.0, 0.1, 1.0) == [1.0]


@pytest.mark.parametrize(("first", "second", "preference"), [
    ({"A": 0.7, "B": 0.2, "C": 0.1}, {"A": 0.2, "B": 0.7, "C": 0.1}, 0.5),    # answer 0 in both orders
    ({"A": 0.9, "B": 0.05, "C": 0.05}, {"A": 0.6, "B": 0.3, "C": 0.1}, 0.275),  # A favoured, still answer 0
    ({"A": 0.6, "B": 0.3, "C": 0.1}, {"A": 0.9, "B": 0.05, "C": 0.05}, -0.275),  # same bias, answer 1 leads
    ({"A": 0.8, "B": 0.1, "C": 0.1}, {"A": 0.8, "B": 0.1, "C": 0.1}, 0.0),    # pure position bias: no preference
])
def test_calibrated_preference_cancels_a_position_bias(first: dict, second: dict, preference: float) -> None:
    assert calibrated_preference(first, second) == pytest.approx(preference)


def test_calibrated_records_keep_only_a_clear_lead() -> None:
    probabilities = verdict_probabilities({"A": -1.0, "B": -2.0, "C": -1.0})
    assert sum(probabilities.values()) == pytest.approx(1.0) and probabilities["A"] == pytest.approx(probabilities["C"])
    lead = calibrated_record("質問", ["悪い", "良い"], {"A": 0.5, "B": 0.4, "C": 0.1}, {"A": 0.8, "B": 0.1, "C": 0.1}, 0.2)
    assert (lead["outcome"], lead["chosen"], lead["rejected"], lead["preference"]) == ("kept", "良い", "悪い", 0.3)
    close = calibrated_record("質問", ["x", "y"], {"A": 0.5, "B": 0.4, "C": 0.1}, {"A": 0.5, "B": 0.4, "C": 0.1}, 0.2)
    assert close["outcome"] == "tie" and close["judgments"][0] == {"A": 0.5, "B": 0.4, "C": 0.1}


@pytest.mark.parametrize(("preference", "minimum", "winner"), [
    (0.3, 0.2, "model_a"), (-0.3, 0.2, "model_b"), (0.1, 0.2, "tie"), (-0.1, 0.2, "tie"),
    (0.001, 0.0, "model_a"), (0.0, 0.0, "tie"),
])
def test_a_calibrated_battle_needs_a_clear_lead(preference: float, minimum: float, winner: str) -> None:
    assert calibrated_winner(preference, minimum) == winner
