"""DPO's first two steps: the policy answers every prompt twice, and a judge compares the answers.

- **Prompts**: JSONL of ``{"prompt": str}`` or ``{"messages": [...]}`` ending in a user turn
  (``generate: false``: ``{"prompt", "chosen", "rejected"}``); malformed lines are counted with
  their numbers and left out.
- **Answers**: a shard runner (``tanuki_pipelines.synth.shards``), so the same vLLM engines in Ray
  Data, or an endpoint serving the policy, generate them. Both samples of a prompt are drawn at the
  same temperature; identical ones are retried hotter (``pairs.temperature_step`` up to
  ``pairs.max_temperature``).
- **Judging**: the judge sees the two answers in both orders at temperature 0; only consistent
  verdicts become ``{"prompt", "chosen", "rejected"}`` (``tanuki_pipelines.dpo.pairs``), or, with
  ``judge_decision: calibrated``, the verdict probabilities averaged over both orders decide. Each
  judged prompt is appended to ``judged.jsonl`` as it completes, so a rerun judges only the rest.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.dpo.config import DPOConfig
from tanuki_pipelines.dpo.pairs import calibrated_record, identical, pair_record, retry_temperatures
from tanuki_pipelines.sft.data import conversation_problem
from tanuki_pipelines.synth.generation import Generate, Request
from tanuki_pipelines.synth.plan import Problems, read_jsonl_records


def prompt_messages(record: dict[str, Any]) -> tuple[list[dict[str, str]] | None, str | None]:
    """A prompt record as chat messages ending in a user turn, or the reason it is unusable (pure)."""
    if isinstance(record.get("prompt"), str):
        text = record["prompt"].strip()
        return ([{"role": "user", "content": text}], None) if text else (None, "empty prompt")
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return None, "no prompt and no messages"
    problem = conversation_problem({"messages": [*messages, {"role": "assistant", "content": "x"}]})
    if problem:
        return None, problem
    if messages[-1]["role"] != "user":
        return None, "messages do not end in a user turn"
    return [{"role": m["role"], "content": m["content"]} for m in messages], None


def read_prompts(path: Path) -> tuple[list[dict[str, Any]], Problems]:
    problems = Problems()
    items = []
    for number, record in read_jsonl_records(path, problems):
        messages, problem = prompt_messages(record)
        if problem:
            problems.add(problem, f"{path.name}:{number}")
        else:
            items.append({"id": str(record.get("id", f"prompt:{number}")), "messages": messages})
    if not items:
        raise BadInputError(f"prompts: {path} has no usable prompt ({dict(problems.counts) or 'empty'})")
    return items, problems


def pair_problem(record: dict[str, Any]) -> str | None:
    """Why a ``generate: false`` record is not a usable preference pair, or None (pure)."""
    _, problem = prompt_messages(record)
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if problem is None and not (isinstance(chosen, str) and chosen.strip() and isinstance(rejected, str)
                                and rejected.strip()):
        problem = "no chosen/rejected text"
    return problem


def read_ready_pairs(path: Path) -> tuple[list[dict[str, Any]], Problems]:
    """``generate: false``: the prompts file already holds prompt/chosen/rejected."""
    problems = Problems()
    pairs = []
    for number, record in read_jsonl_records(path, problems):
        messages, _ = prompt_messages(record)
        problem = pair_problem(record)
        if problem:
            problems.add(problem, f"{path.name}:{number}")
        else:
            pairs.append({"id": str(record.get("id", f"pair:{number}")), "prompt": messages,
                          "chosen": record["chosen"], "rejected": record["rejected"]})
    if not pairs:
        raise BadInputError(f"prompts: {path} has no usable preference pair ({dict(problems.counts) or 'empty'})")
    return pairs, problems


def answer_shard(items: list[dict[str, Any]], settings_json: str, generate: Generate) -> list[dict[str, Any]]:
    """Two answers per prompt, retried hotter while they are identical (a shard runner)."""
    pairs = DPOConfig.model_validate_json(settings_json).pairs
    records: dict[str, dict[str, Any]] = {item["id"]: {"id": item["id"], "messages": item["messages"], "answers": [],
                                                       "generated_tokens": 0} for item in items}
    live = list(items)
    for tries, temperature in enumerate(retry_temperatures(pairs.temperature, pairs.temperature_step,
                                                           pairs.max_temperature), start=1):
        outputs = generate([Request(item["messages"], temperature, pairs.max_tokens)
                            for item in live for _ in range(2)])
        still = []
        for index, item in enumerate(live):
            first, second = outputs[2 * index], outputs[2 * index + 1]
            record = records[item["id"]]
            record.update(answers=[first.text.strip(), second.text.strip()], temperature=temperature, tries=tries)
            record["generated_tokens"] += first.tokens + second.tokens
            record.pop("error", None)
            if first.error or second.error or not first.text.strip() or not second.text.strip():
                record["error"] = first.error or second.error or "empty answer"
            elif identical(first.text, second.text):
                still.append(item)
        live = still
        if not live:
            break
    for item in live:
        records[item["id"]]["identical"] = True
    return [records[item["id"]] for item in items]


def question_of(messages: list[dict[str, str]]) -> str:
    """What the judge is shown as the question: the conversation up to the last user turn."""
    if len(messages) == 1:
        return messages[0]["content"]
    return "\n\n".join(f"[{m['role']}] {m['content']}" for m in messages)


def judge_answers(answers: list[dict[str, Any]], config: DPOConfig, out: Path) -> list[dict[str, Any]]:
    """Every answered prompt's pair record (``tanuki_pipelines.dpo.pairs``), judging only what
    ``judged.jsonl`` does not hold yet."""
    from tanuki_pipelines.eval.client import RequestFailed, calibrated_verdicts, chat, reachable_client
    from tanuki_pipelines.eval.judging import choice_verdict, pair_messages

    judge, pairs = config.pairs.judge, config.pairs
    judged_file = out / "judged.jsonl"
    done = {}
    if judged_file.is_file():
        for line in judged_file.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run: judged again
            done[record["id"]] = record
    results = []
    todo = []
    for record in answers:
        if record["id"] in done:
            continue
        if record.get("identical"):
            done[record["id"]] = {"id": record["id"], "outcome": "identical", "prompt": record["messages"],
                                  "answers": record["answers"], "temperature": record.get("temperature")}
        elif record.get("error"):
            done[record["id"]] = {"id": record["id"], "outcome": "no_answers", "prompt": record["messages"],
                                  "error": record["error"]}
        else:
            todo.append(record)
    if todo:
        judge_client = reachable_client(judge.base_url, judge.api_key_env, "pairs.judge.base_url")
        regex = choice_verdict(judge.verdict_reason_chars) if judge.constrain_verdict else None

        def verdicts(record: dict[str, Any]) -> dict[str, Any]:
            question = question_of(record["messages"])
            first, second = record["answers"]
            if pairs.judge_decision == "calibrated":
                return {"id": record["id"], **calibrated(question, record)}
            texts = []
            for shown_a, shown_b in ((first, second), (second, first)):
                try:
                    texts.append(chat(judge_client, judge.model, pair_messages(question, shown_a, shown_b,
                                                                               pairs.judge_language),
                                      0.0, pairs.judge_max_tokens, regex))
                except RequestFailed as exc:
                    texts.append(f"(request failed: {exc})")
            return {"id": record["id"], **pair_record(record["messages"], record["answers"], texts)}

        def calibrated(question: str, record: dict[str, Any]) -> dict[str, Any]:
            first, second = record["answers"]
            try:
                shown = calibrated_verdicts(judge_client, judge.model, question, first, second, pairs.judge_language)
            except RequestFailed as exc:
                return {"outcome": "unparseable", "prompt": record["messages"], "answers": record["answers"],
                        "judgments": [f"(request failed: {exc})"]}
            return calibrated_record(record["messages"], record["answers"], shown[0], shown[1], pairs.min_preference)

        with judged_file.open("a", encoding="utf-8") as sink, ThreadPoolExecutor(pairs.judge_parallel) as pool:
            for judged in pool.map(verdicts, todo):
                sink.write(json.dumps(judged, ensure_ascii=False) + "\n")
                sink.flush()
                os.fsync(sink.fileno())
                done[judged["id"]] = judged
    for record in answers:
        results.append(done[record["id"]])
    return results
