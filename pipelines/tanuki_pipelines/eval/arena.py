"""Arena battles between the targets, judged in both orders, logged in FastChat's battle format.

Every pair of targets meets on every prompt: each answers once (cached in ``arena/answers``), the
judge compares the two answers with A/B in both orders, and a consistent verdict names the winner
(disagreeing orders are a tie). ``battles.jsonl`` holds one FastChat record per battle
(``question_id``, ``model_a``, ``model_b``, ``winner``, the judge's texts), so FastChat's logs, a
human-voting arena's, or the Tanuki arena's imported votes can be rated together with it.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.eval.client import RequestFailed, calibrated_verdicts, chat, client
from tanuki_pipelines.eval.config import ArenaConfig, Contestant, EvalConfig
from tanuki_pipelines.eval.judging import (
    battle_winner,
    calibrated_preference,
    calibrated_winner,
    choice_verdict,
    pair_messages,
    parse_choice,
)
from tanuki_pipelines.eval.records import Journal, load_questions, read_jsonl, safe_name


def load_prompts(config: ArenaConfig) -> list[tuple[str, str]]:
    """(prompt id, prompt): a ``{"prompt"}`` JSONL, or the first turns of MT-Bench questions."""
    prompts: list[tuple[str, str]] = []
    if config.prompts is not None:
        records, _ = read_jsonl(config.prompts)
        if not records and not config.prompts.is_file():
            raise BadInputError(f"arena.prompts: no such file: {config.prompts}")
        for index, record in enumerate(records):
            if isinstance(record, dict) and isinstance(record.get("prompt"), str) and record["prompt"]:
                prompts.append((str(record.get("id", index)), record["prompt"]))
            elif isinstance(record, dict) and isinstance(record.get("turns"), list) and record["turns"]:
                prompts.append((str(record.get("question_id", index)), str(record["turns"][0])))
    else:
        prompts = [(q.question_id, q.turns[0]) for q in load_questions(None).items]
    if config.max_prompts is not None and len(prompts) > config.max_prompts:
        prompts = sorted(random.Random(config.seed).sample(prompts, config.max_prompts))
    return prompts


def import_votes(path: Path, codes: Mapping[str, str]) -> tuple[list[dict[str, Any]], Counter]:
    """The Tanuki arena's vote records of a file as FastChat battles (``model_1`` → ``model_a``)."""
    records, broken = read_jsonl(path)
    battles, dropped = votes_as_battles(records, codes)
    if broken:
        dropped["not JSON"] += broken
    return battles, dropped


def votes_as_battles(records: list[Any], codes: Mapping[str, str]) -> tuple[list[dict[str, Any]], Counter]:
    """Vote records as FastChat battles; a vote whose answer named a model (``flagged``) is left out."""
    battles, dropped = [], Counter[str]()
    for record in records:
        if not isinstance(record, dict) or not all(record.get(k) for k in ("model_1", "model_2")):
            dropped["vote without model_1/model_2"] += 1
            continue
        if record.get("flagged") is True:
            dropped["an answer named a model (flagged)"] += 1
            continue
        winner = codes.get(str(record.get("evaluation")))
        if winner is None:
            dropped[f"evaluation {record.get('evaluation')!r} has no vote_codes entry"] += 1
            continue
        battles.append({"question": record.get("question"), "model_a": record["model_1"], "model_b": record["model_2"],
                        "winner": winner, "tstamp": record.get("created_time"), "source": "tanuki-arena"})
    return battles, dropped


def answers_of(target: Contestant, prompts: list[tuple[str, str]], config: EvalConfig, out: Path) -> Journal:
    answers = Journal(out / "arena" / "answers" / f"{safe_name(target.label)}.jsonl", ("prompt_id",))
    model_client = client(target.base_url, target.api_key_env)

    def answer(item: tuple[str, str]) -> None:
        prompt_id, prompt = item
        try:
            reply = chat(model_client, target.model, [{"role": "user", "content": prompt}], config.arena.temperature,
                         config.arena.max_tokens)
        except RequestFailed as exc:
            answers.add({"prompt_id": prompt_id, "model": target.label, "answer": None, "error": str(exc)})
            return
        answers.add({"prompt_id": prompt_id, "model": target.label, "answer": reply})

    with ThreadPoolExecutor(config.arena.parallel) as pool:
        list(pool.map(answer, [p for p in prompts if not answers.has(p[0])]))
    return answers


def battles(config: EvalConfig, out: Path) -> Journal:
    """Run (or finish) every battle; the journal is ``battles.jsonl``."""
    prompts = load_prompts(config.arena)
    answers = {target.label: answers_of(target, prompts, config, out) for target in config.targets}
    log = Journal(out / "battles.jsonl", ("question_id", "model_a", "model_b"))
    judge_client = client(config.judge.base_url, config.judge.api_key_env)

    def fight(item: tuple[tuple[str, str], tuple[Contestant, Contestant]]) -> None:
        (prompt_id, prompt), (first, second) = item
        answer_a = answers[first.label].record(prompt_id)["answer"]
        answer_b = answers[second.label].record(prompt_id)["answer"]
        if config.arena.judge_decision == "calibrated":
            try:
                shown_ab, shown_ba = calibrated_verdicts(judge_client, config.judge.model, prompt, answer_a, answer_b)
            except RequestFailed as exc:
                log.add({"question_id": prompt_id, "model_a": first.label, "model_b": second.label,
                         "winner": "judge request failed", "judge": config.judge.model, "error": str(exc)})
                return
            preference = calibrated_preference(shown_ab, shown_ba)
            log.add({"question_id": prompt_id, "model_a": first.label, "model_b": second.label,
                     "winner": calibrated_winner(preference, config.arena.min_preference), "judge": config.judge.model,
                     "turn": 1, "tstamp": time.time(), "preference_a": round(preference, 6),
                     "verdicts_ab": shown_ab, "verdicts_ba": shown_ba})
            return
        regex = choice_verdict(config.judge.verdict_reason_chars) if config.judge.constrain_verdict else None
        try:
            judgment_ab = chat(judge_client, config.judge.model, pair_messages(prompt, answer_a, answer_b), 0.0, 512,
                               regex)
            judgment_ba = chat(judge_client, config.judge.model, pair_messages(prompt, answer_b, answer_a), 0.0, 512,
                               regex)
        except RequestFailed as exc:
            log.add({"question_id": prompt_id, "model_a": first.label, "model_b": second.label,
                     "winner": "judge request failed", "judge": config.judge.model, "error": str(exc)})
            return
        winner = battle_winner(parse_choice(judgment_ab), parse_choice(judgment_ba))
        log.add({"question_id": prompt_id, "model_a": first.label, "model_b": second.label,
                 "winner": winner or "unparseable", "judge": config.judge.model, "turn": 1,
                 "tstamp": time.time(), "judgment_ab": judgment_ab, "judgment_ba": judgment_ba})

    pairs = list(itertools.combinations(config.targets, 2))
    def answered(label: str, prompt_id: str) -> bool:
        record = answers[label].get(prompt_id)
        return record is not None and record.get("answer") is not None

    todo = [(p, pair) for p in prompts for pair in pairs
            if answered(pair[0].label, p[0]) and answered(pair[1].label, p[0])
            and not log.has(p[0], pair[0].label, pair[1].label)]
    with ThreadPoolExecutor(config.arena.parallel) as pool:
        list(pool.map(fight, todo))
    return log


def all_battles(config: EvalConfig, own: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Counter]:
    """This run's battles plus the configured extra logs and imported votes."""
    records, dropped = list(own), Counter[str]()
    for path in config.arena.battles:
        if not path.is_file():
            raise BadInputError(f"arena.battles: no such file: {path}")
        extra, broken = read_jsonl(path)
        records += extra
        if broken:
            dropped[f"{path.name}: not JSON"] += broken
    if config.arena.votes is not None:
        if not config.arena.votes.is_file():
            raise BadInputError(f"arena.votes: no such file: {config.arena.votes}")
        votes, vote_drops = import_votes(config.arena.votes, config.arena.vote_codes)
        records += votes
        dropped += vote_drops
    if config.arena.votes_database:
        from tanuki_pipelines.votes.export import read_votes

        votes, vote_drops = votes_as_battles(read_votes(config.arena.votes_database), config.arena.vote_codes)
        records += votes
        dropped += vote_drops
    return records, dropped


def write_log(records: list[dict[str, Any]], path: Path) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
