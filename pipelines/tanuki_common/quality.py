"""Quality gates of a canary (pure): is the canary not clearly worse than the model it replaces?

Each gate turns its evidence into a ``GateVerdict`` with the figures it decided on; ``combine``
makes the rollout's call: any gate without evidence holds the canary (``AnalysisError``: never
promote on missing evidence), any failed gate rolls it back (``QualityRegression``), and only when
every gate passed may it go on. Nothing here runs a model: the evidence comes from an evaluation
(judged battles, log-likelihoods, grades, harness scores, vLLM's latency histograms).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import NormalDist

QUALITY_PASSED = "QualityPassed"
QUALITY_REGRESSION = "QualityRegression"
ANALYSIS_ERROR = "AnalysisError"
"""Reasons of a verdict (the last two are the rollout's reasons to roll back and to hold)."""


@dataclass(frozen=True)
class GateVerdict:
    """One gate's outcome."""

    gate: str
    """Which gate (arena, perplexity, grade, harness, latency; ``all`` for a combination)."""
    passed: bool | None
    """True: not worse; False: worse beyond the threshold; None: no evidence to decide on."""
    message: str
    """The figures in words, for the status and the Event."""
    figures: dict[str, float] = field(default_factory=dict)
    """The numbers decided on (kept in ``status.rollout``)."""

    @property
    def reason(self) -> str:
        return {True: QUALITY_PASSED, False: QUALITY_REGRESSION, None: ANALYSIS_ERROR}[self.passed]


def win_rate_lower_bound(wins: int, ties: int, losses: int, confidence: float = 0.95) -> float | None:
    """One-sided lower confidence bound of the canary's win rate, a tie counting half (None without
    battles).

    Wilson's score interval, with the variance a battle's score (1, ½ or 0) has when the win rate
    is ``p`` and the tie share is the observed one ``τ``: ``p(1 − p) − τ/4``. Without ties it is
    Wilson's; ties, which are certain halves, narrow it (all ties: exactly ½), where counting a
    tie as a coin toss would leave it as wide as decisive battles do. The bound is the lower root
    of ``(m − p)² = z²/n · (p(1 − p) − τ/4)``, ``m`` the observed rate.
    """
    battles = wins + ties + losses
    if battles == 0:
        return None
    rate, tie_share = (wins + ties / 2) / battles, ties / battles
    k = NormalDist().inv_cdf(confidence) ** 2 / battles
    # (1 + k)p² − (2m + k)p + (m² + kτ/4) = 0; its discriminant is k(4m(1 − m) − τ + k(1 − τ)) ≥ 0
    discriminant = k * (4 * rate * (1 - rate) - tie_share + k * (1 - tie_share))
    bound = (2 * rate + k - math.sqrt(max(discriminant, 0.0))) / (2 * (1 + k))
    return min(max(bound, 0.0), rate)


def arena_gate(wins: int, ties: int, losses: int, min_win_rate: float = 0.4,
               confidence: float = 0.95) -> GateVerdict:
    """Judged battles of the canary against the reference, as a non-inferiority test: passes when
    the battles show the canary is not clearly worse, i.e. the lower bound of its win rate is at
    least ``min_win_rate``. Few battles show little: an equal canary needs enough of them to pass
    (``identical_pass_rate``)."""
    bound = win_rate_lower_bound(wins, ties, losses, confidence)
    if bound is None:
        return GateVerdict("arena", None, "no judged battle")
    battles = wins + ties + losses
    figures = {"wins": wins, "ties": ties, "losses": losses, "win_rate": (wins + ties / 2) / battles,
               "lower_bound": bound, "min_win_rate": min_win_rate}
    said = (f"canary won {wins}, tied {ties}, lost {losses} of {battles}: win rate "
            f"{figures['win_rate']:.2f}, {confidence:.0%} lower bound {bound:.2f}")
    if bound >= min_win_rate:
        return GateVerdict("arena", True, f"{said} ≥ {min_win_rate}", figures)
    return GateVerdict("arena", False, f"{said} < {min_win_rate}", figures)


def perplexity_gate(canary_logprob: float | None, reference_logprob: float | None,
                    max_drop: float) -> GateVerdict:
    """Mean log-likelihood per token (nats) of a held-out text set: passes when the canary's is at
    most ``max_drop`` below the reference's."""
    if canary_logprob is None or reference_logprob is None or not all(
            math.isfinite(value) for value in (canary_logprob, reference_logprob)):
        return GateVerdict("perplexity", None, "no log-likelihood for one of the two revisions")
    drop = reference_logprob - canary_logprob
    figures = {"canary_logprob": canary_logprob, "reference_logprob": reference_logprob, "drop": drop,
               "max_drop": max_drop, "canary_perplexity": math.exp(-canary_logprob),
               "reference_perplexity": math.exp(-reference_logprob)}
    said = (f"perplexity {figures['canary_perplexity']:.3g} against {figures['reference_perplexity']:.3g} "
            f"(log-likelihood per token {drop:+.4f} nats below)")
    return GateVerdict("perplexity", drop <= max_drop, f"{said}, allowed {max_drop}", figures)


def grade_gate(canary_mean: float | None, reference_mean: float | None, max_drop: float) -> GateVerdict:
    """Mean 1–10 grade of the canary's answers: passes when at least the reference's − ``max_drop``."""
    if canary_mean is None or reference_mean is None:
        return GateVerdict("grade", None, "no grade for one of the two revisions")
    figures = {"canary": canary_mean, "reference": reference_mean, "max_drop": max_drop}
    said = f"mean grade {canary_mean:.2f} against {reference_mean:.2f}, allowed drop {max_drop}"
    return GateVerdict("grade", canary_mean >= reference_mean - max_drop, said, figures)


def harness_gate(canary: dict[str, float], reference: dict[str, float], max_drop: float) -> GateVerdict:
    """lm-evaluation-harness scores per task: passes when every task's is at least the reference's
    − ``max_drop`` (a task missing on either side is missing evidence)."""
    tasks = sorted(reference)
    if not tasks or any(task not in canary for task in tasks):
        missing = [task for task in tasks if task not in canary] or ["every task"]
        return GateVerdict("harness", None, f"no canary score for {', '.join(missing)}")
    worse = [task for task in tasks if canary[task] < reference[task] - max_drop]
    figures = {f"{task}:{side}": scores[task] for task in tasks for side, scores in
               (("canary", canary), ("reference", reference))}
    if worse:
        listed = ", ".join(f"{task} {canary[task]:.3f} < {reference[task]:.3f} − {max_drop}" for task in worse)
        return GateVerdict("harness", False, listed, figures)
    return GateVerdict("harness", True, f"{len(tasks)} tasks within {max_drop} of the reference", figures)


def perplexity_bar(logprob: float | None, max_perplexity: float) -> GateVerdict:
    """A model with nothing to compare with: passes when its perplexity (e^−mean log-likelihood per
    token) is at most ``max_perplexity``."""
    if logprob is None or not math.isfinite(logprob):
        return GateVerdict("perplexity", None, "no log-likelihood")
    perplexity = math.exp(-logprob)
    figures = {"canary_logprob": logprob, "canary_perplexity": perplexity, "max_perplexity": max_perplexity}
    return GateVerdict("perplexity", perplexity <= max_perplexity,
                       f"perplexity {perplexity:.3g}, bar {max_perplexity:.3g}", figures)


def grade_bar(mean: float | None, min_grade: float) -> GateVerdict:
    """A model with nothing to compare with: passes when its mean 1–10 grade is at least ``min_grade``."""
    if mean is None:
        return GateVerdict("grade", None, "no grade")
    return GateVerdict("grade", mean >= min_grade, f"mean grade {mean:.2f}, bar {min_grade}",
                       {"canary": mean, "min_grade": min_grade})


def harness_bar(scores: dict[str, float], min_scores: dict[str, float]) -> GateVerdict:
    """A model with nothing to compare with: passes when each task's score is at least its bar (a
    task without a score is missing evidence)."""
    missing = [task for task in sorted(min_scores) if task not in scores]
    if missing or not min_scores:
        return GateVerdict("harness", None, f"no score for {', '.join(missing) or 'every task'}")
    below = [task for task in sorted(min_scores) if scores[task] < min_scores[task]]
    figures = {f"{task}:{side}": value for task in sorted(min_scores)
               for side, value in (("canary", scores[task]), ("bar", min_scores[task]))}
    if below:
        return GateVerdict("harness", False, ", ".join(f"{task} {scores[task]:.3f} < bar {min_scores[task]}"
                                                       for task in below), figures)
    return GateVerdict("harness", True, f"{len(min_scores)} tasks at or above their bars", figures)


def latency_gate(canary_p95: dict[str, float], reference_p95: dict[str, float], max_ratio: float) -> GateVerdict:
    """p95 of time to first token and inter-token latency over the same window: passes when each of
    the canary's is at most ``max_ratio`` × the reference's."""
    measures = ("time_to_first_token", "inter_token_latency")
    if any(canary_p95.get(m) is None or not reference_p95.get(m) for m in measures):
        return GateVerdict("latency", None, "no latency histogram for one of the two revisions in the window")
    ratios = {m: canary_p95[m] / reference_p95[m] for m in measures}
    said = ", ".join(f"p95 {m.replace('_', ' ')} {ratios[m]:.2f}×" for m in measures)
    return GateVerdict("latency", all(r <= max_ratio for r in ratios.values()), f"{said}, allowed {max_ratio}×",
                       {**{f"{m}_ratio": r for m, r in ratios.items()}, "max_ratio": max_ratio})


def combine(verdicts: Iterable[GateVerdict]) -> GateVerdict:
    """The rollout's call: a failed gate rolls back, a gate without evidence holds, else it passes."""
    found = list(verdicts)
    failed = [v for v in found if v.passed is False]
    if failed:
        return GateVerdict("all", False, "; ".join(f"{v.gate}: {v.message}" for v in failed))
    unknown = [v for v in found if v.passed is None]
    if unknown:
        return GateVerdict("all", None, "; ".join(f"{v.gate}: {v.message}" for v in unknown))
    return GateVerdict("all", True, "; ".join(f"{v.gate}: {v.message}" for v in found) or "no quality gate")


def identical_pass_rate(battles: int, tie_share: float, min_win_rate: float = 0.4, confidence: float = 0.95) -> float:
    """How often the arena gate passes two identical checkpoints: each battle a tie with
    ``tie_share``, else a win or a loss with equal odds (exact, over every outcome)."""
    side = (1 - tie_share) / 2
    total = 0.0
    for wins in range(battles + 1):
        for ties in range(battles - wins + 1):
            losses = battles - wins - ties
            verdict = arena_gate(wins, ties, losses, min_win_rate, confidence)
            if verdict.passed:
                total += math.exp(math.lgamma(battles + 1) - math.lgamma(wins + 1) - math.lgamma(ties + 1)
                                  - math.lgamma(losses + 1) + _times_log(wins, side) + _times_log(ties, tie_share)
                                  + _times_log(losses, side))
    return total


def _times_log(count: int, probability: float) -> float:
    """``count × log(probability)``, with 0 × log 0 = 0."""
    if count == 0:
        return 0.0
    return count * math.log(probability) if probability > 0 else -math.inf
