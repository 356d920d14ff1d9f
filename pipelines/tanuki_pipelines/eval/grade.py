"""MT-Bench-style single-answer grading.

Each target answers both turns of every question (the second with the first in context); the
judge scores each turn 1–10 (reference-guided for math, reasoning and coding). Answers and
judgments are appended to ``answers/<model>.jsonl`` and ``judgments/<model>.jsonl`` as they
arrive, so a rerun only asks for what is missing. Unreadable verdicts are counted per model.
"""

from __future__ import annotations

import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tanuki_pipelines.eval.client import RequestFailed, chat, client
from tanuki_pipelines.eval.config import Contestant, EvalConfig
from tanuki_pipelines.eval.judging import grade_messages, parse_rating, rating_verdict
from tanuki_pipelines.eval.records import Journal, Question, load_questions, safe_name

DEFAULT_TEMPERATURE = 0.7


def answer_all(target: Contestant, questions: list[Question], config: EvalConfig, out: Path) -> Journal:
    answers = Journal(out / "answers" / f"{safe_name(target.label)}.jsonl", ("question_id",))
    model_client = client(target.base_url, target.api_key_env)

    def answer(question: Question) -> None:
        temperature = config.grade.temperatures.get(question.category, DEFAULT_TEMPERATURE)
        messages: list[dict[str, str]] = []
        replies = []
        try:
            for turn in question.turns:
                messages.append({"role": "user", "content": turn})
                reply = chat(model_client, target.model, messages, temperature, config.grade.max_tokens)
                messages.append({"role": "assistant", "content": reply})
                replies.append(reply)
        except RequestFailed as exc:  # recorded, not retried by a rerun: counted in the summary
            answers.add({"question_id": question.question_id, "model": target.label, "category": question.category,
                         "turns": replies, "error": str(exc)})
            return
        answers.add({"question_id": question.question_id, "model": target.label, "category": question.category,
                     "turns": replies})

    missing = [q for q in questions if not answers.has(q.question_id)]
    with ThreadPoolExecutor(config.grade.parallel) as pool:
        list(pool.map(answer, missing))
    return answers


def judge_all(target: Contestant, questions: list[Question], answers: Journal, config: EvalConfig,
              out: Path) -> Journal:
    judgments = Journal(out / "judgments" / f"{safe_name(target.label)}.jsonl", ("question_id", "turn"))
    judge_client = client(config.judge.base_url, config.judge.api_key_env)

    def judge(item: tuple[Question, int]) -> None:
        question, turn = item
        replies = answers.record(question.question_id)["turns"]
        messages = grade_messages(question.category, list(question.turns), replies, turn,
                                  list(question.reference) if question.reference else None)
        record = {"question_id": question.question_id, "turn": turn, "model": target.label,
                  "category": question.category, "judge": config.judge.model}
        try:
            text = chat(judge_client, config.judge.model, messages, 0.0, config.grade.judge_max_tokens,
                        rating_verdict(config.judge.verdict_reason_chars) if config.judge.constrain_verdict else None)
        except RequestFailed as exc:
            judgments.add({**record, "score": None, "judgment": "", "error": str(exc)})
            return
        judgments.add({**record, "score": parse_rating(text), "judgment": text})

    todo = [(q, turn) for q in questions for turn in range(1, len(q.turns) + 1)
            if answers.has(q.question_id) and not answers.record(q.question_id).get("error")
            and not judgments.has(q.question_id, turn)]
    with ThreadPoolExecutor(config.grade.parallel) as pool:
        list(pool.map(judge, todo))
    return judgments


def summarize(answers: Journal, judgments: Journal) -> dict[str, Any]:
    """Per-category and overall means of the readable scores; verdicts that could not be read and
    requests that failed, counted."""
    by_category: dict[str, list[float]] = {}
    unparseable, failed = 0, Counter[str]()
    for record in answers.records.values():
        if record.get("error"):
            failed[f"answer: {record['error'][:120]}"] += 1
    for record in judgments.records.values():
        if record.get("error"):
            failed[f"judgment: {record['error'][:120]}"] += 1
        elif record["score"] is None:
            unparseable += 1
        else:
            by_category.setdefault(record["category"], []).append(float(record["score"]))
    scores = [score for values in by_category.values() for score in values]
    return {"overall": round(statistics.fmean(scores), 3) if scores else None,
            "categories": {c: round(statistics.fmean(v), 3) for c, v in sorted(by_category.items())},
            "graded": len(scores), "unparseable": unparseable, "failed_requests": dict(failed)}


def grade(config: EvalConfig, out: Path) -> dict[str, Any]:
    """Grade every target; returns what ``grades.json`` holds."""
    questions = load_questions(config.grade.questions)
    result: dict[str, Any] = {"questions": len(questions.items), "dropped_questions": dict(questions.dropped),
                              "judge": config.judge.model, "models": {}}
    if not questions.items:
        return result
    for target in config.targets:
        answers = answer_all(target, questions.items, config, out)
        judgments = judge_all(target, questions.items, answers, config, out)
        result["models"][target.label] = summarize(answers, judgments)
    result["categories"] = dict(sorted(Counter(q.category for q in questions.items).items()))
    return result
