"""Turning one shard's work items into records, whatever engine generates (pure given ``generate``).

The shard is generated in rounds, each one batched call of ``generate``: rewrites and the
dialogues' first questions together, then translations (when asked), then one round per answer
turn, each follow-up turn drawing its critique request from the shipped list. An engine is any
``generate(requests) -> generations`` in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tanuki_pipelines.synth.config import SynthConfig
from tanuki_pipelines.synth.prompts import answer_messages, question_messages, rewrite_messages, translate_messages


@dataclass(frozen=True)
class Request:
    messages: list[dict[str, str]]
    temperature: float
    max_tokens: int
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0

    def sampling(self) -> dict[str, Any]:
        """What is recorded with the output (everything but the prompt)."""
        found = asdict(self)
        found.pop("messages")
        return found


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int
    error: str | None = None
    """Why nothing was generated (e.g. the prompt did not fit the context)."""


Generate = Callable[[list[Request]], list[Generation]]


def _rewrite_request(config: SynthConfig, item: dict[str, Any]) -> Request:
    rewrite = config.rewrite
    return Request(rewrite_messages(item["text"], item["style"]), rewrite.temperature, rewrite.max_tokens,
                   repetition_penalty=rewrite.repetition_penalty)


def run_shard(items: list[dict[str, Any]], config: SynthConfig, generate: Generate) -> list[dict[str, Any]]:
    """One record per item, in item order."""
    dialogues = config.dialogues
    rewrites = [item for item in items if item["kind"] == "rewrite"]
    talks = [item for item in items if item["kind"] == "dialogue"]
    first = [_rewrite_request(config, item) for item in rewrites] + [
        Request(question_messages(item["persona"], item["personality"], item["task"]),
                dialogues.question_temperature, dialogues.max_tokens, top_k=dialogues.question_top_k)
        for item in talks]
    outputs = generate(first)
    records: dict[str, dict[str, Any]] = {}
    for item, request, output in zip(rewrites, first, outputs, strict=False):
        records[item["id"]] = {"id": item["id"], "kind": "rewrite", "style": item["style"],
                               "source_id": item["source_id"], "source_chars": item["source_chars"],
                               "text": output.text.strip(), "sampling": request.sampling(),
                               "generated_tokens": output.tokens, **({"error": output.error} if output.error else {})}
    if config.rewrite.translate and rewrites:
        done = [records[item["id"]] for item in rewrites if records[item["id"]]["text"]]
        translations = generate([Request(translate_messages(record["text"]), config.rewrite.temperature,
                                         config.rewrite.max_tokens) for record in done])
        for record, translation in zip(done, translations, strict=True):
            if translation.text.strip():
                record["text"] += "\n\n" + translation.text.strip()
            record["generated_tokens"] += translation.tokens
    question_sampling = first[len(rewrites)].sampling() if talks else {}
    answer_sampling = Request([], dialogues.answer_temperature, dialogues.max_tokens).sampling()
    live = []
    for item, output in zip(talks, outputs[len(rewrites):], strict=True):
        record = {"id": item["id"], "kind": "dialogue", "messages": [{"role": "user", "content": output.text.strip()}],
                  "persona": item["persona"], "personality": item["personality"], "task": item["task"],
                  "sampling": {"question": question_sampling, "answer": answer_sampling},
                  "generated_tokens": output.tokens}
        records[item["id"]] = record
        if output.text.strip():
            live.append((item, record))
        else:
            record["error"] = output.error or "empty question"
    for turn in range(dialogues.turns):
        if turn > 0:
            for item, record in live:
                record["messages"].append({"role": "user", "content": item["followups"][turn - 1]})
        answers = generate([Request(answer_messages(record["messages"]), dialogues.answer_temperature,
                                    dialogues.max_tokens) for _, record in live])
        still = []
        for (item, record), answer in zip(live, answers, strict=True):
            record["generated_tokens"] += answer.tokens
            if answer.text.strip():
                record["messages"].append({"role": "assistant", "content": answer.text.strip()})
                still.append((item, record))
            else:
                record["error"] = answer.error or f"empty answer in turn {turn + 1}"
                if record["messages"][-1]["role"] == "user" and turn > 0:
                    record["messages"].pop()  # keep the dialogue whole up to its last answer
        live = still
    return [records[item["id"]] for item in items]


def run_shard_json(items: list[dict[str, Any]], settings_json: str, generate: Generate) -> list[dict[str, Any]]:
    """``run_shard`` as a shard runner (``tanuki_pipelines.synth.shards``) reads it."""
    return run_shard(items, SynthConfig.model_validate_json(settings_json), generate)
