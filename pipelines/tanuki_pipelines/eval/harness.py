"""``tanuki eval harness``: EleutherAI's lm-evaluation-harness against each target's endpoint.

The harness runs as its own process through its CLI (``python -m lm_eval run``): its table writer
(pytablewriter → typepy[datetime]) pins python-dateutil < 3, which the operator extra's Kubernetes
client (≥ 3) rejects, so it may live in another environment than tanuki's. The interpreter is
``$TANUKI_LM_EVAL_PYTHON`` when set, else this one (the trainer image installs ``tanuki[harness]``).

The target's key reaches the harness as ``OPENAI_API_KEY`` in its environment, never on its
command line. Scores come from the harness's own ``results_*.json``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.eval.client import api_key
from tanuki_pipelines.eval.config import Contestant, HarnessConfig

SHIPPED_TASKS = Path(__file__).parent / "harness_tasks"
"""The tasks shipped with tanuki (a tiny Japanese multiple-choice set with its data beside it)."""
PYTHON_VARIABLE = "TANUKI_LM_EVAL_PYTHON"
INTERFACES = {"completions": ("local-completions", "/completions"),
              "chat-completions": ("local-chat-completions", "/chat/completions")}


def harness_python() -> str:
    """The interpreter that runs lm-evaluation-harness."""
    chosen = os.environ.get(PYTHON_VARIABLE)
    if chosen:
        if not Path(chosen).is_file():
            raise BadInputError(f"{PYTHON_VARIABLE}: no such interpreter: {chosen}")
        return chosen
    if importlib.util.find_spec("lm_eval") is None:
        raise BadInputError(
            "lm-evaluation-harness is not installed here: install `tanuki[harness]` (the trainer image has it) in an "
            "environment without the `operator` extra (its Kubernetes client needs python-dateutil >= 3, the "
            f"harness < 3), or set {PYTHON_VARIABLE} to a Python that has lm-eval 0.4.13")
    return sys.executable


def harness_command(python: str, target: Contestant, config: HarnessConfig, max_length: int,
                    output_path: Path) -> list[str]:
    """The harness's command line for one target (pure; no secret in it)."""
    model_type, route = INTERFACES[config.interface]
    model_args = {"model": target.model, "base_url": target.base_url.rstrip("/") + route,
                  "num_concurrent": config.concurrent, "max_retries": 3, "max_length": max_length}
    if target.tokenizer:
        model_args.update(tokenizer_backend="huggingface", tokenizer=target.tokenizer)
    else:
        model_args.update(tokenizer_backend="remote")
    task_dir = config.task_dir or SHIPPED_TASKS
    command = [python, "-m", "lm_eval", "run", "--model", model_type,
               "--model_args", ",".join(f"{key}={value}" for key, value in model_args.items()),
               "--tasks", ",".join(config.tasks), "--include_path", str(Path(task_dir).resolve()),
               "--output_path", str(output_path), "--seed", str(config.seed), "--batch_size", "1",
               "--log_samples"]
    if config.interface == "chat-completions":
        command.append("--apply_chat_template")
    if config.num_fewshot is not None:
        command += ["--num_fewshot", str(config.num_fewshot)]
    if config.limit is not None:
        command += ["--limit", str(config.limit)]
    return command


def scores_of(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` from a harness ``results_*.json``: its ``metric,filter`` entries
    (standard errors and the ``,none`` filter suffix left out; other filters keep their name)."""
    scores: dict[str, dict[str, float]] = {}
    for task, metrics in results.get("results", {}).items():
        kept = {}
        for key, value in metrics.items():
            metric, comma, filter_name = key.partition(",")
            if not comma or "_stderr" in metric or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            name = metric if filter_name in ("", "none") else f"{metric} ({filter_name})"
            kept[name] = float(value)
        if kept:
            scores[task] = kept
    return scores


def server_max_model_len(target: Contestant) -> int | None:
    """The served model's context length as vLLM reports it in ``/v1/models`` (None when absent)."""
    import httpx

    url = target.base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {api_key(target.api_key_env)}"}, timeout=30)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise BadInputError(f"targets[{target.label}]: cannot read {url}: {exc}") from None
    for card in response.json().get("data", []):
        if card.get("id") == target.model and card.get("max_model_len"):
            return int(card["max_model_len"])
    return None


def _newest_results(directory: Path) -> Path | None:
    found = sorted(directory.rglob("results_*.json"), key=lambda path: path.stat().st_mtime)
    return found[-1] if found else None


def run_target(python: str, target: Contestant, config: HarnessConfig, out: Path) -> dict[str, Any]:
    """One target's harness run → its scores, or the reason it has none."""
    max_length = config.max_length or server_max_model_len(target)
    if max_length is None:
        raise BadInputError(f"targets[{target.label}]: the server does not report max_model_len; "
                            "set harness.max_length")
    run_dir = out / "harness" / target.label
    run_dir.mkdir(parents=True, exist_ok=True)
    command = harness_command(python, target, config, max_length, run_dir)
    env = {**os.environ, "OPENAI_API_KEY": api_key(target.api_key_env), "TOKENIZERS_PARALLELISM": "false"}
    log = run_dir / "harness.log"
    print(f"[tanuki eval] harness: {target.label}: tasks {','.join(config.tasks)} (log {log})", flush=True)
    with log.open("w", encoding="utf-8") as sink:
        try:
            finished = subprocess.run(command, cwd=config.task_dir or SHIPPED_TASKS, env=env, stdout=sink,
                                      stderr=subprocess.STDOUT, timeout=config.timeout_seconds, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {config.timeout_seconds} s", "log": str(log)}
    results = _newest_results(run_dir)
    if finished.returncode != 0 or results is None:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        return {"error": f"lm_eval exited with {finished.returncode}: {' | '.join(tail)[-600:]}", "log": str(log)}
    return {"scores": scores_of(json.loads(results.read_text(encoding="utf-8"))), "results": str(results),
            "log": str(log)}


def run_harness(targets: list[Contestant], config: HarnessConfig, out: Path) -> dict[str, Any]:
    """Every target through the harness: ``{"tasks", "models": {label: {task: {metric: value}}}, "errors"}``."""
    python = harness_python()
    task_dir = Path(config.task_dir or SHIPPED_TASKS)
    if not task_dir.is_dir():
        raise BadInputError(f"harness.task_dir: no such directory: {task_dir}")
    summary: dict[str, Any] = {"tasks": list(config.tasks), "models": {}, "errors": {}, "results": {}}
    for target in targets:
        ran = run_target(python, target, config, out)
        if "error" in ran:
            summary["errors"][target.label] = ran["error"]
            print(f"[tanuki eval] harness: {target.label}: {ran['error']}", file=sys.stderr, flush=True)
            continue
        summary["models"][target.label] = ran["scores"]
        summary["results"][target.label] = ran["results"]
    return summary


def headline(metrics: Any) -> tuple[str, float] | None:
    """A task's headline score: its first metric (the one the leaderboard shows), if a finite number."""
    if not isinstance(metrics, dict) or not metrics:
        return None
    metric, value = next(iter(metrics.items()))
    return (metric, float(value)) if isinstance(value, int | float) and math.isfinite(value) else None


def best_of(summary: dict[str, Any]) -> tuple[str, str] | None:
    """The top model on the first task's first metric, and that score as text."""
    ranked = []
    for model, tasks in summary["models"].items():
        for task in summary["tasks"]:
            metrics = tasks.get(task) or {}
            if metrics:
                found = headline(metrics)
                if found is not None:
                    metric, value = found
                    ranked.append((value, model, f"{task} {metric} {value:.3f}"))
                break
    if not ranked:
        return None
    _, model, text = max(ranked)
    return model, text
