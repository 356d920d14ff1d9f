"""What ``tanuki eval`` checks before it asks any model (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

import os
from typing import Any

from tanuki_pipelines.eval.config import EvalConfig
from tanuki_pipelines.preflight import Preflight


def _prompt_problem(record: dict[str, Any]) -> str | None:
    if isinstance(record.get("prompt"), str) and record["prompt"]:
        return None
    if isinstance(record.get("turns"), list) and record["turns"]:
        return None
    return 'no string "prompt" and no "turns" list'


def _text_problem(record: dict[str, Any]) -> str | None:
    if isinstance(record.get("text"), str) and record["text"].strip():
        return None
    if isinstance(record.get("turns"), list) and any(isinstance(t, str) and t for t in record["turns"]):
        return None
    return 'no non-empty string "text" and no "turns" list'


def _key_problem(field: str, variable: str | None) -> str | None:
    """An API key the program reads from ``$VAR`` or the file ``$VAR_FILE`` names."""
    if variable is None or os.environ.get(variable):
        return None
    named = os.environ.get(f"{variable}_FILE")
    if named and os.path.isfile(named):
        return None
    return f"{field}: neither ${variable} nor a file at ${variable}_FILE is set (the API key it names)"


def preflight(config: EvalConfig, check: Preflight) -> None:
    mode = config.mode
    if mode in ("grade", "arena", "harness", "gate") and not config.targets:
        check.problem(f"targets: no model to evaluate (mode {mode})")
    if mode == "arena" and 0 < len(config.targets) < 2 and not config.arena.battles and config.arena.votes is None:
        check.problem("targets: an arena needs at least two models (or arena.battles / arena.votes to rate)")
    if check.paths_here:  # the pod's environment: in `tanuki check` the keys come from Secrets later
        for index, target in enumerate(config.targets):
            if (problem := _key_problem(f"targets[{index}].api_key_env", target.api_key_env)) is not None:
                check.problem(problem)
    if (mode == "grade" or (mode == "gate" and config.gate.grade is not None)) and config.grade.questions is not None:
        check.present("grade.questions", config.grade.questions, "a question file")
    if (mode == "arena" or (mode == "gate" and config.gate.arena is not None)) and config.arena.prompts is not None:
        check.records("arena.prompts", config.arena.prompts, 'prompts ({"prompt": ...} or {"turns": [...]})',
                      _prompt_problem)
    for index, path in enumerate(config.arena.battles):
        check.present(f"arena.battles[{index}]", path, "a battle log (JSONL)")
    if config.arena.votes is not None:
        check.present("arena.votes", config.arena.votes, "a vote export (JSONL)")
    if mode == "gate" and config.gate.perplexity is not None and config.gate.perplexity.texts is not None:
        check.records("gate.perplexity.texts", config.gate.perplexity.texts, 'texts ({"text": ...} or {"turns": [...]})',
                      _text_problem)
    if mode == "harness" and config.harness.task_dir is not None:
        check.present("harness.task_dir", config.harness.task_dir, "a directory of lm-evaluation-harness tasks")
