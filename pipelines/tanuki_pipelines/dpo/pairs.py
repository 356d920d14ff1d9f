"""Preference pairs from the policy's own answers (pure): when two samples are identical the
prompt is retried at a higher temperature; the judge's two verdicts (answers shown in both
orders) become chosen/rejected only when they agree. Ties, disagreements and unreadable verdicts
are kept aside with their reason and the judge's text.

``calibrated`` judging reads the judge's probability of each verdict instead of its text and
averages the preference over both orders (balanced position calibration, Wang et al. 2023,
"Large Language Models are not Fair Evaluators"): a position bias adds the same amount to both
orders and cancels, so a small judge that always writes ``[[A]]`` still ranks the answers.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from tanuki_pipelines.eval.judging import calibrated_preference, parse_choice

OUTCOMES = ("kept", "tie", "inconsistent", "unparseable", "identical", "no_answers")
"""Every pair ends as one of these (``identical``: still the same answer at the temperature cap;
``no_answers``: the policy returned nothing, e.g. a prompt longer than its context)."""
WHITESPACE = re.compile(r"\s+")


def identical(first: str, second: str) -> bool:
    """Two answers that differ at most in whitespace."""
    return WHITESPACE.sub(" ", first).strip() == WHITESPACE.sub(" ", second).strip()


def retry_temperatures(start: float, step: float, cap: float) -> list[float]:
    """The temperatures a prompt is tried at: ``start``, then ``+step`` each time up to ``cap``."""
    found, value = [start], start
    while value + step <= cap + 1e-9:
        value = round(value + step, 6)
        found.append(value)
    return found


def decide(verdict_shown_first: str, verdict_shown_second: str) -> tuple[str, int | None]:
    """``(outcome, index of the chosen answer)`` from the judge's texts: the first with answer 0 as
    A and answer 1 as B, the second with the order swapped."""
    first, second = parse_choice(verdict_shown_first), parse_choice(verdict_shown_second)
    if first is None or second is None:
        return "unparseable", None
    if first == "C" and second == "C":
        return "tie", None
    if (first, second) == ("A", "B"):
        return "kept", 0
    if (first, second) == ("B", "A"):
        return "kept", 1
    return "inconsistent", None


def pair_record(prompt: Any, answers: list[str], verdicts: list[str]) -> dict[str, Any]:
    """The record of one judged prompt: ``{"prompt", "chosen", "rejected"}`` when kept, otherwise
    the answers, the judge's texts and the reason."""
    outcome, chosen = decide(verdicts[0], verdicts[1])
    if chosen is not None:  # decide() names a chosen answer exactly when the pair is kept
        return {"outcome": outcome, "prompt": prompt, "chosen": answers[chosen], "rejected": answers[1 - chosen]}
    return {"outcome": outcome, "prompt": prompt, "answers": answers, "judgments": verdicts}


def calibrated_record(prompt: Any, answers: list[str], shown_first: dict[str, float], shown_second: dict[str, float],
                      min_preference: float) -> dict[str, Any]:
    """A judged prompt from verdict probabilities in both orders: kept when one answer leads by at
    least ``min_preference``, otherwise a tie."""
    preference = calibrated_preference(shown_first, shown_second)
    judgments = [{v: round(p, 6) for v, p in probs.items()} for probs in (shown_first, shown_second)]
    if abs(preference) < min_preference:
        return {"outcome": "tie", "prompt": prompt, "answers": answers, "judgments": judgments,
                "preference": round(preference, 6)}
    chosen = 0 if preference > 0 else 1
    return {"outcome": "kept", "prompt": prompt, "chosen": answers[chosen], "rejected": answers[1 - chosen],
            "preference": round(abs(preference), 6)}


def pair_stats(records: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(record["outcome"] for record in records)
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}
