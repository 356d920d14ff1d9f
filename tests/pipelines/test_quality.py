"""Quality gates of a canary: the confidence bound, each gate's verdict on its figures, and the
combination (fail rolls back, missing evidence holds, never promote without evidence)."""

from __future__ import annotations

import math

import pytest

from tanuki_common.quality import (
    ANALYSIS_ERROR,
    QUALITY_PASSED,
    QUALITY_REGRESSION,
    GateVerdict,
    arena_gate,
    combine,
    grade_bar,
    grade_gate,
    harness_bar,
    harness_gate,
    identical_pass_rate,
    latency_gate,
    perplexity_bar,
    perplexity_gate,
    win_rate_lower_bound,
)


@pytest.mark.parametrize(("wins", "ties", "losses", "expected"), [
    (50, 0, 50, 0.4188),   # p = 0.5, n = 100, z = 1.645: (p + z²/2n − z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n)
    (10, 0, 0, 0.7870),    # a clean sweep of 10 is not certainty
    (0, 0, 10, 0.0),
    (500, 0, 500, 0.4740),  # more battles, a tighter bound
    (0, 12, 0, 0.5),       # ties are certain halves: all ties is exactly ½, however few
    (25, 50, 25, 0.4426),  # half tied: k = z²/n, (1 + k − √(k(1 − τ + kτ)))/(2(1 + k)); 50–50 untied: 0.4188
])
def test_wilson_lower_bound_with_ties(wins: int, ties: int, losses: int, expected: float) -> None:
    bound = win_rate_lower_bound(wins, ties, losses, 0.95)
    assert bound is not None and bound == pytest.approx(expected, abs=5e-4)


def test_the_bound_is_wilsons_when_ties_are_split_and_never_above_the_rate() -> None:
    import random

    rng = random.Random(0)
    for _ in range(300):
        wins, ties, losses = rng.randrange(60), rng.randrange(60), rng.randrange(60)
        if wins + ties + losses == 0:
            continue
        bound = win_rate_lower_bound(wins, ties, losses)
        rate = (wins + ties / 2) / (wins + ties + losses)
        assert 0 <= bound <= rate
        if ties % 2 == 0:  # counting the ties as decided half each way (Wilson's) is never tighter
            assert bound >= win_rate_lower_bound(wins + ties // 2, 0, losses + ties // 2) - 1e-9


def test_no_battles_no_bound() -> None:
    assert win_rate_lower_bound(0, 0, 0) is None


@pytest.mark.parametrize(("wins", "ties", "losses", "passed"), [
    (50, 0, 50, True),     # even over 100 battles: shown not clearly worse (bound 0.42)
    (40, 10, 50, False),   # a little behind: the bound (0.37) falls under 0.4
    (30, 0, 70, False),    # clearly worse
    (5, 0, 5, False),      # even, but 10 battles cannot show it is not worse (bound 0.24)
    (0, 0, 0, None),       # nothing judged: no evidence, never a pass
])
def test_arena_gate_is_a_non_inferiority_test(wins: int, ties: int, losses: int, passed: bool | None) -> None:
    verdict = arena_gate(wins, ties, losses, min_win_rate=0.4)
    assert verdict.passed is passed
    if passed is not None:
        assert verdict.figures["losses"] == losses and str(losses) in verdict.message


def test_perplexity_gate() -> None:
    same = perplexity_gate(-2.0, -2.0, max_drop=0.05)
    assert same.passed and same.figures["canary_perplexity"] == pytest.approx(math.exp(2.0))
    assert perplexity_gate(-2.04, -2.0, max_drop=0.05).passed
    worse = perplexity_gate(-2.5, -2.0, max_drop=0.05)
    assert worse.passed is False and worse.reason == QUALITY_REGRESSION and "+0.5000 nats" in worse.message
    assert perplexity_gate(-1.5, -2.0, max_drop=0.05).passed  # better passes
    assert perplexity_gate(None, -2.0, 0.05).passed is None
    assert perplexity_gate(float("nan"), -2.0, 0.05).reason == ANALYSIS_ERROR


def test_grade_harness_and_latency_gates() -> None:
    assert grade_gate(6.6, 7.0, max_drop=0.5).passed and grade_gate(6.4, 7.0, max_drop=0.5).passed is False
    assert grade_gate(None, 7.0, 0.5).passed is None
    reference = {"jcommonsenseqa": 0.80, "jnli": 0.60}
    assert harness_gate({"jcommonsenseqa": 0.79, "jnli": 0.61}, reference, max_drop=0.02).passed
    worse = harness_gate({"jcommonsenseqa": 0.70, "jnli": 0.61}, reference, max_drop=0.02)
    assert worse.passed is False and "jcommonsenseqa" in worse.message and "jnli" not in worse.message
    assert harness_gate({"jnli": 0.61}, reference, 0.02).passed is None  # a task without a canary score
    fast = {"time_to_first_token": 0.20, "inter_token_latency": 0.05}
    assert latency_gate({"time_to_first_token": 0.22, "inter_token_latency": 0.05}, fast, max_ratio=1.2).passed
    slow = latency_gate({"time_to_first_token": 0.30, "inter_token_latency": 0.05}, fast, max_ratio=1.2)
    assert slow.passed is False and slow.figures["time_to_first_token_ratio"] == pytest.approx(1.5)
    assert latency_gate({}, fast, 1.2).passed is None


def test_absolute_bars_judge_a_model_with_nothing_to_compare_with() -> None:
    assert perplexity_bar(-math.log(30), max_perplexity=40).passed
    high = perplexity_bar(-math.log(50), max_perplexity=40)
    assert high.passed is False and high.figures["canary_perplexity"] == pytest.approx(50) and "bar 40" in high.message
    assert perplexity_bar(None, 40).passed is None and perplexity_bar(float("-inf"), 40).passed is None
    assert grade_bar(6.0, min_grade=6.0).passed and grade_bar(5.9, min_grade=6.0).passed is False
    assert grade_bar(None, 6.0).reason == ANALYSIS_ERROR
    bars = {"jcommonsenseqa": 0.5, "jnli": 0.4}
    assert harness_bar({"jcommonsenseqa": 0.5, "jnli": 0.41, "other": 0.0}, bars).passed
    below = harness_bar({"jcommonsenseqa": 0.45, "jnli": 0.41}, bars)
    assert below.passed is False and "jcommonsenseqa 0.450 < bar 0.5" == below.message
    assert harness_bar({"jnli": 0.9}, bars).passed is None  # a task without its score is missing evidence


def test_combine_rolls_back_on_a_failure_holds_without_evidence_and_passes_only_when_all_pass() -> None:
    passed, failed, unknown = (GateVerdict("arena", True, "ok"), GateVerdict("perplexity", False, "worse"),
                               GateVerdict("grade", None, "judge down"))
    assert combine([passed, unknown, failed]).reason == QUALITY_REGRESSION
    held = combine([passed, unknown])
    assert held.reason == ANALYSIS_ERROR and "judge down" in held.message
    assert combine([passed]).reason == QUALITY_PASSED


def test_how_often_two_identical_checkpoints_pass_the_arena_gate() -> None:
    # the rate the issue asks the note to give: identical models, a third of battles tied
    rates = [identical_pass_rate(battles, 1 / 3) for battles in (20, 80, 250)]
    assert rates == sorted(rates) and rates[0] < 0.4 and rates[2] > 0.95
    assert identical_pass_rate(250, 0.9) > 0.99  # mostly ties (a debug judge): a tighter bound
    assert identical_pass_rate(80, 1 / 3, min_win_rate=0.5) < 0.05  # asking "better" fails equals
