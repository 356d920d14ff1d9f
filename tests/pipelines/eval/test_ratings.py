"""Ratings: Bradley-Terry recovers known strengths within its intervals, ties are half wins,
Glicko-2 reproduces Glickman's worked example, bad battle records are counted by reason."""

from __future__ import annotations

import numpy as np
import pytest

from tanuki_pipelines.eval.glicko2 import Rating, rate
from tanuki_pipelines.eval.ratings import Battle, bootstrap, bradley_terry, clean, glicko, leaderboard

TRUE = {"tanuki-8b": 1000.0, "strong": 1150.0, "mid": 1080.0, "weak": 850.0}


def simulated(count: int, seed: int, tie_share: float = 0.1) -> list[Battle]:
    """Battles drawn from Bradley-Terry with the TRUE ratings (ties at a fixed share)."""
    rng = np.random.default_rng(seed)
    names = list(TRUE)
    battles = []
    for _ in range(count):
        i, j = rng.choice(len(names), 2, replace=False)
        a, b = names[i], names[j]
        p_a = 1.0 / (1.0 + 10 ** ((TRUE[b] - TRUE[a]) / 400))
        u = rng.random()
        if u < tie_share:
            winner = "tie"
        else:
            winner = "model_a" if rng.random() < p_a else "model_b"
        battles.append(Battle(a, b, winner))
    return battles


def test_bradley_terry_ranks_like_the_truth_and_its_intervals_hold_the_true_differences() -> None:
    battles = simulated(3000, seed=7, tie_share=0.0)  # the model Bradley-Terry fits (ties are tested below)
    anchor = ("tanuki-8b", 1000.0)
    ratings = bradley_terry(battles, anchor)
    assert sorted(ratings, key=ratings.get) == sorted(TRUE, key=TRUE.get)
    assert ratings["tanuki-8b"] == pytest.approx(1000.0)
    intervals = bootstrap(battles, rounds=200, seed=0, anchor=anchor)
    for model, (low, high) in intervals.items():
        assert low <= TRUE[model] <= high, (model, low, TRUE[model], high)


def test_only_ties_give_equal_ratings_and_a_tie_is_half_a_win_each_way() -> None:
    ratings = bradley_terry([Battle("a", "b", "tie"), Battle("b", "c", "tie (bothbad)"), Battle("a", "c", "tie")] * 5)
    assert max(ratings.values()) - min(ratings.values()) < 1e-6
    one_each = bradley_terry([Battle("a", "b", "model_a"), Battle("a", "b", "model_b")])
    tied = bradley_terry([Battle("a", "b", "tie"), Battle("a", "b", "tie")])
    assert one_each == pytest.approx(tied)


def test_glicko2_reproduces_glickmans_worked_example() -> None:
    player = rate(Rating(1500, 200, 0.06),
                  [(Rating(1400, 30, 0.06), 1.0), (Rating(1550, 100, 0.06), 0.0), (Rating(1700, 300, 0.06), 0.0)],
                  tau=0.5)
    assert round(player.rating, 2) == 1464.05 or round(player.rating, 2) == 1464.06
    assert round(player.rd, 2) == 151.52
    assert round(player.volatility, 5) == 0.06 and player.volatility == pytest.approx(0.05999, abs=1e-5)


def test_glicko2_over_a_log_orders_like_the_truth() -> None:
    ratings = glicko(simulated(2000, seed=3), period=20)
    assert sorted(ratings, key=lambda m: ratings[m].rating) == sorted(TRUE, key=TRUE.get)
    assert all(r.rd < 100 for r in ratings.values())  # many games: confident


def test_bad_records_are_counted_by_reason_and_the_rest_is_rated() -> None:
    records = [{"model_a": "a", "model_b": "b", "winner": "model_a"}, {"model_a": "a", "model_b": "b", "winner": "tie"},
               {"model_a": "a", "model_b": "a", "winner": "tie"}, {"model_a": "a", "winner": "tie"},
               {"model_a": "a", "model_b": "b", "winner": "draw"}, "not a record",
               {"model_a": "a", "model_b": "b", "winner": "unparseable"}]
    log = clean(records)
    assert len(log.battles) == 2
    assert log.dropped == {"a model against itself": 1, "missing model_a, model_b or winner": 2,
                           "unknown winner 'draw'": 1, "the judge gave no readable verdict": 1}
    board = leaderboard(log.battles, rounds=20)
    assert [row["model"] for row in board["models"]] == ["a", "b"]
    assert board["models"][0] | {"bt": None, "glicko2": None} == {
        "model": "a", "bt": None, "glicko2": None, "battles": 2, "wins": 1, "losses": 0, "ties": 1, "win_rate": 0.5}
    assert board["win_rate_matrix"] == {"a": {"b": 0.5}, "b": {"a": 0.0}}
