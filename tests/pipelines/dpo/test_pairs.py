"""Pair decisions, table-driven: only verdicts that agree across both orders make a pair."""

from __future__ import annotations

import pytest

from tanuki_pipelines.dpo.pairs import decide, identical, pair_record, pair_stats, retry_temperatures


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
