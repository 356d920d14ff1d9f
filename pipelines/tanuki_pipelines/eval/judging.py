"""The judge's prompts (this project's own wording) and the parsing of its verdicts (pure).

Single-answer grading asks for a score ``[[1]]``–``[[10]]``; for math, reasoning and coding the
reference answer is shown to the judge. Pairwise judging asks for ``[[A]]``, ``[[B]]`` or ``[[C]]``
(a tie). A verdict that cannot be read is ``None``: counted, never guessed.
"""

from __future__ import annotations

import math
import re

REFERENCE_CATEGORIES = {"math", "reasoning", "coding"}

GRADE_SYSTEM = (
    "あなたは公平で厳密な評価者です。AIアシスタントの回答の質を、有用性、正確さ、深さ、具体性、"
    "日本語としての自然さの観点から評価します。回答の長さだけで評価を上げてはいけません。"
    "まず短く理由を述べ、最後に必ず「評価: [[N]]」の形式で1から10の整数を一つだけ書いてください。"
)
GRADE_REFERENCE_SYSTEM = (
    "あなたは公平で厳密な評価者です。参考解答と照らし合わせて、AIアシスタントの回答の正しさを最も重視して評価します。"
    "誤りがあれば具体的に指摘してください。まず短く理由を述べ、最後に必ず「評価: [[N]]」の形式で"
    "1から10の整数を一つだけ書いてください。"
)
PAIR_SYSTEM = (
    "あなたは公平な評価者です。同じ質問に対する二つのAIアシスタントの回答を比べ、どちらがより良いかを判断します。"
    "回答の順番や長さ、アシスタントの名前に影響されてはいけません。まず短く理由を述べ、最後に必ず、"
    "アシスタントAが良ければ [[A]]、アシスタントBが良ければ [[B]]、同程度なら [[C]] を一つだけ書いてください。"
)


def _conversation(turns: list[str], answers: list[str]) -> str:
    parts = []
    for number, (question, answer) in enumerate(zip(turns, answers, strict=False), start=1):
        parts.append(f"### ユーザー（{number}回目）\n{question}\n\n### アシスタント（{number}回目）\n{answer}")
    return "\n\n".join(parts)


def grade_messages(category: str, turns: list[str], answers: list[str], turn: int,
                   reference: list[str] | None) -> list[dict[str, str]]:
    """Judge messages for turn ``turn`` (1-based) of a two-turn conversation."""
    reference_answer = (reference[turn - 1] if category in REFERENCE_CATEGORIES and reference and len(reference) >= turn
                        else None)
    use_reference = reference_answer is not None
    shown = _conversation(turns[:turn], answers[:turn])
    focus = "" if turn == 1 else f"\n\n評価するのは、{turn}回目のアシスタントの回答だけです。それ以前のやり取りは文脈です。"
    reference_text = f"\n\n### 参考解答（{turn}回目）\n{reference_answer}" if use_reference else ""
    return [{"role": "system", "content": GRADE_REFERENCE_SYSTEM if use_reference else GRADE_SYSTEM},
            {"role": "user", "content": f"{shown}{reference_text}{focus}"}]


PAIR_SYSTEM_EN = (
    "You are an impartial judge. Compare two AI assistants' answers to the same question and decide which is "
    "better. Do not let the order, the length or the assistants' names influence you. Give a short reason, then "
    "end with exactly one verdict: [[A]] if assistant A is better, [[B]] if assistant B is better, [[C]] for a tie."
)


def pair_messages(question: str, answer_a: str, answer_b: str, language: str = "ja") -> list[dict[str, str]]:
    if language == "en":
        return [{"role": "system", "content": PAIR_SYSTEM_EN},
                {"role": "user", "content": f"### Question\n{question}\n\n### Assistant A's answer\n{answer_a}\n\n"
                                            f"### Assistant B's answer\n{answer_b}"}]
    return [{"role": "system", "content": PAIR_SYSTEM},
            {"role": "user", "content": f"### 質問\n{question}\n\n### アシスタントAの回答\n{answer_a}\n\n"
                                        f"### アシスタントBの回答\n{answer_b}"}]


def rating_verdict(reason_chars: int) -> str:
    """What a constrained judge's grading answer must match: a short reason, then the score."""
    return rf"[^\[\]]{{0,{reason_chars}}}評価: \[\[(10|[1-9])\]\]"


def choice_verdict(reason_chars: int) -> str:
    """What a constrained judge's pairwise answer must match."""
    return rf"[^\[\]]{{0,{reason_chars}}}\[\[[ABC]\]\]"

RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
CHOICE = re.compile(r"\[\[\s*([ABC])\s*\]\]")


def parse_rating(judgment: str) -> float | None:
    """The score in ``[[N]]`` (1–10); None when missing, out of range, or several different ones."""
    found = {float(value) for value in RATING.findall(judgment or "")}
    if len(found) != 1:
        return None
    (score,) = found
    return score if 1.0 <= score <= 10.0 else None


def parse_choice(judgment: str) -> str | None:
    """``A``, ``B`` or ``C`` from ``[[A]]``/``[[B]]``/``[[C]]``; None when missing or contradictory."""
    found = set(CHOICE.findall(judgment or ""))
    return found.pop() if len(found) == 1 else None


def battle_winner(first: str | None, second: str | None) -> str | None:
    """The FastChat winner of a battle judged in both orders: ``first`` with model_a shown as A,
    ``second`` with the order swapped. Disagreeing orders are a tie; None if either is unreadable."""
    if first is None or second is None:
        return None
    swapped = {"A": "B", "B": "A", "C": "C"}[second]
    if first != swapped:
        return "tie"
    return {"A": "model_a", "B": "model_b", "C": "tie"}[first]


VERDICTS = ("A", "B", "C")


def verdict_probabilities(logprobs: dict[str, float]) -> dict[str, float]:
    """The judge's log-probabilities of ``[[A]]``, ``[[B]]``, ``[[C]]`` → probabilities over the three."""
    top = max(logprobs[v] for v in VERDICTS)
    weights = {v: math.exp(logprobs[v] - top) for v in VERDICTS}
    total = sum(weights.values())
    return {v: weights[v] / total for v in VERDICTS}


def calibrated_preference(shown_first: dict[str, float], shown_second: dict[str, float]) -> float:
    """How much the judge prefers answer 0, in [-1, 1]: P(A) − P(B) with answer 0 as A, and
    P(B) − P(A) with the order swapped, averaged."""
    return ((shown_first["A"] - shown_first["B"]) + (shown_second["B"] - shown_second["A"])) / 2


def calibrated_winner(preference: float, min_preference: float) -> str:
    """The FastChat winner from model_a's averaged lead (``calibrated_preference`` with model_a's
    answer first): a lead under ``min_preference`` either way is a tie."""
    if preference >= min_preference and preference > 0:
        return "model_a"
    if preference <= -min_preference and preference < 0:
        return "model_b"
    return "tie"
