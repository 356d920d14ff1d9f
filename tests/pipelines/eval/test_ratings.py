"""Ratings: Bradley-Terry recovers known strengths within its intervals, ties are half wins,
Glicko-2 reproduces Glickman's worked example, bad battle records are counted by reason; a separated
log (a model that never lost) gets records instead of numbers, and no zero-width interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from tanuki_pipelines.eval.glicko2 import Rating, rate
from tanuki_pipelines.eval.ratings import (
    Battle,
    bootstrap,
    bradley_terry,
    bt_cells,
    clean,
    glicko,
    leaderboard,
    method_notes,
    percentile_bounds,
    record,
)
from tanuki_pipelines.eval.separation import estimability

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
        "model": "a", "bt": None, "glicko2": None, "battles": 2, "wins": 1, "losses": 0, "ties": 1, "win_rate": 0.5,
        "few_battles": True}
    assert board["win_rate_matrix"] == {"a": {"b": 0.5}, "b": {"a": 0.0}}


# --- separation: no number, and no interval, that the data cannot support ---

def wins(a: str, b: str, count: int) -> list[Battle]:
    return [Battle(a, b, "model_a")] * count


def test_one_battle_rates_nobody_and_shows_the_records() -> None:
    board = leaderboard([Battle("x", "y", "model_a")], rounds=50)
    assert [row["model"] for row in board["models"]] == ["x", "y"]  # ordered by Glicko-2, defined for any record
    assert [row["bt"] for row in board["models"]] == [{"rating": None, "separation": "above", "why": "never lost"},
                                                      {"rating": None, "separation": "below", "why": "never won"}]
    assert all(row["few_battles"] for row in board["models"])
    assert bt_cells(board["models"][0]) == ("not estimable", "never lost (1–0)")
    chain = leaderboard([Battle("a", "b", "model_a"), Battle("b", "c", "model_a")], rounds=10)["models"]
    assert [(row["model"], row["bt"]["separation"]) for row in chain] == [("a", "above"), ("b", "apart"),
                                                                          ("c", "below")]
    assert any("fewer than 10 battles" in note for note in method_notes(board))


def test_twelve_to_nothing_is_not_estimable_and_has_no_zero_width_interval() -> None:
    board = leaderboard(wins("dpo", "sft", 12), rounds=100)
    assert all(row["bt"]["rating"] is None and "ci_low" not in row["bt"] for row in board["models"])
    assert [record(row) for row in board["models"]] == ["12–0", "0–12"]
    assert board["models"][0]["glicko2"]["rating"] > board["models"][1]["glicko2"]["rating"]  # Glicko-2 stays


def test_a_model_that_never_loses_is_above_the_rated_ones_which_keep_finite_ratings() -> None:
    # b and c split their games; a beats both every time
    battles = wins("a", "b", 6) + wins("a", "c", 6) + wins("b", "c", 7) + wins("c", "b", 5)
    board = leaderboard(battles, rounds=200, seed=1)
    rows = {row["model"]: row for row in board["models"]}
    assert [row["model"] for row in board["models"]] == ["a", "b", "c"]
    assert rows["a"]["bt"] == {"rating": None, "separation": "above", "why": "never lost to the rated models"}
    assert bt_cells(rows["a"]) == ("not estimable", "never lost to the rated models (12–0)")
    b, c = rows["b"]["bt"], rows["c"]["bt"]
    assert b["rating"] > c["rating"] and b["rating"] + c["rating"] == pytest.approx(2000, abs=0.1)
    # the ratings of b and c are those of their own games alone: 7–5 is a log-odds of ln(7/5)
    assert b["rating"] - c["rating"] == pytest.approx(400 * math.log10(7 / 5), abs=0.5)
    for bt in (b, c):  # finite, and wide: 12 games say little
        assert bt["ci_low"] is not None and bt["ci_high"] is not None and bt["ci_high"] - bt["ci_low"] > 50
    assert any("record shows instead" in note for note in method_notes(board))


def test_a_resample_that_separates_makes_the_interval_unbounded_on_that_side() -> None:
    battles = wins("a", "b", 9) + wins("b", "a", 1)  # in ~35% of resamples b never wins
    board = leaderboard(battles, rounds=300, seed=0)
    a, b = (row["bt"] for row in board["models"])
    assert a["rating"] > b["rating"]
    assert a["ci_high"] is None and a["ci_low"] is not None  # a may be infinitely better, not worse
    assert b["ci_low"] is None and b["ci_high"] is not None
    assert bt_cells(board["models"][0])[1].endswith("– +∞")
    assert any("±∞" in note for note in method_notes(board))


def test_a_stated_prior_rates_everyone_and_is_named() -> None:
    board = leaderboard(wins("dpo", "sft", 12), rounds=100, prior_sd=400)
    dpo, sft = (row["bt"] for row in board["models"])
    assert dpo["separation"] == "above" and sft["separation"] == "below"
    assert dpo["rating"] > 1000 > sft["rating"] and dpo["rating"] + sft["rating"] == pytest.approx(2000, abs=0.1)
    assert "ci_low" not in dpo and "ci_high" not in dpo  # every resample is 12–0 too: no zero-width interval
    assert bt_cells(board["models"][0]) == (f"{dpo['rating']:.1f}*", "none: 12–0, one-sided in every resample")
    mixed = leaderboard(wins("a", "b", 6) + wins("a", "c", 6) + wins("b", "c", 7) + wins("c", "b", 5), rounds=100,
                        prior_sd=400)["models"]
    assert [row["model"] for row in mixed] == ["a", "b", "c"] and "ci_low" not in mixed[0]["bt"]
    assert all(row["bt"]["ci_low"] < row["bt"]["rating"] < row["bt"]["ci_high"] for row in mixed[1:])
    assert any("Gaussian prior" in note and "C = 1" in note for note in method_notes(board))
    stronger = leaderboard(wins("dpo", "sft", 12), rounds=0, prior_sd=100)["models"][0]["bt"]["rating"]
    assert 1000 < stronger < dpo["rating"]  # a tighter prior shrinks harder


def test_without_separation_the_ratings_are_the_maximum_likelihood_and_unchanged_by_the_check() -> None:
    battles = simulated(400, seed=11)
    assert not estimability(battles).separated
    board = leaderboard(battles, rounds=20)
    ours = {row["model"]: row["bt"]["rating"] for row in board["models"]}
    # the likelihood Chatbot Arena maximises, minimised directly: win = 2 points, tie = 1 each way
    models = sorted(TRUE)
    index = {m: i for i, m in enumerate(models)}
    points = np.zeros((len(models), len(models)))
    for battle in battles:
        a, b = index[battle.model_a], index[battle.model_b]
        if battle.tie:
            points[a, b] += 1
            points[b, a] += 1
        else:
            points[(a, b) if battle.winner == "model_a" else (b, a)] += 2

    def negative_log_likelihood(free: np.ndarray) -> float:
        r = np.append(free, -free.sum())  # mean zero, as the solver's own answer
        diff = (r[:, None] - r[None, :]) * math.log(10)
        return float((points * np.logaddexp(0, -diff)).sum())

    best = minimize(negative_log_likelihood, np.zeros(len(models) - 1), method="BFGS", options={"gtol": 1e-9}).x
    expected = dict(zip(models, 400 * np.append(best, -best.sum()) + 1000, strict=True))
    assert ours == pytest.approx(expected, abs=0.05)
    assert all(row["bt"]["ci_low"] < row["bt"]["rating"] < row["bt"]["ci_high"] for row in board["models"])
    assert method_notes(board) == []


def test_percentile_bounds_match_numpy_on_finite_values_and_open_on_infinite_ones() -> None:
    values = list(np.random.default_rng(0).normal(size=101))
    assert percentile_bounds(values) == pytest.approx((np.percentile(values, 2.5), np.percentile(values, 97.5)))
    assert percentile_bounds([math.inf] * 3 + list(range(97)))[1] is None
    assert percentile_bounds([math.nan] * 3 + list(range(97))) == (None, None)
    assert percentile_bounds([-math.inf] + list(range(99)))[0] is not None  # 1% of resamples: inside the tail
