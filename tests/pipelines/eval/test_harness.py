"""The harness wiring without a server: its command line, score extraction, interpreter choice,
the shipped task, and a clear exit 2 for an unreachable target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tanuki_common.errors import BadInputError
from tanuki_pipelines.eval import harness
from tanuki_pipelines.eval.config import Contestant, HarnessConfig

TARGET = Contestant(name="alpha", base_url="http://svc:8000/v1/", model="m", api_key_env="KEY")


def test_command_for_loglikelihood_tasks_uses_completions_and_the_checkpoint_tokenizer(tmp_path: Path) -> None:
    target = TARGET.model_copy(update={"tokenizer": "/data/ckpt"})
    command = harness.harness_command("py", target, HarnessConfig(limit=5, num_fewshot=2), 2048, tmp_path)
    assert command[:6] == ["py", "-m", "lm_eval", "run", "--model", "local-completions"]
    args = dict(item.split("=", 1) for item in command[command.index("--model_args") + 1].split(","))
    assert args == {"model": "m", "base_url": "http://svc:8000/v1/completions", "num_concurrent": "4",
                    "max_retries": "3", "max_length": "2048", "tokenizer_backend": "huggingface",
                    "tokenizer": "/data/ckpt"}
    assert command[command.index("--tasks") + 1] == "tanuki_ja_mc"
    assert command[command.index("--include_path") + 1] == str(harness.SHIPPED_TASKS.resolve())
    assert command[command.index("--limit") + 1] == "5" and command[command.index("--num_fewshot") + 1] == "2"
    assert "--apply_chat_template" not in command and "--log_samples" in command


def test_command_for_chat_generation_uses_the_server_tokenizer_and_the_chat_template(tmp_path: Path) -> None:
    config = HarnessConfig(interface="chat-completions", tasks=["a", "b"], task_dir=tmp_path)
    command = harness.harness_command("py", TARGET, config, 512, tmp_path)
    assert command[5] == "local-chat-completions" and "--apply_chat_template" in command
    assert "base_url=http://svc:8000/v1/chat/completions" in command[command.index("--model_args") + 1]
    assert "tokenizer_backend=remote" in command[command.index("--model_args") + 1]
    assert command[command.index("--tasks") + 1] == "a,b" and "--limit" not in command


def test_scores_keep_metrics_and_drop_stderr_and_bookkeeping() -> None:
    results = {"results": {
        "mc": {"alias": "mc", "sample_len": 6, "acc,none": 0.5, "acc_stderr,none": 0.2, "acc_norm,none": 0.25},
        "gen": {"exact_match,strict-match": 0.1, "exact_match,flexible-extract": 0.3, "exact_match_stderr,strict-match": 1},
        "group": {"alias": "group"}}}
    assert harness.scores_of(results) == {
        "mc": {"acc": 0.5, "acc_norm": 0.25},
        "gen": {"exact_match (strict-match)": 0.1, "exact_match (flexible-extract)": 0.3}}


def test_best_of_ranks_on_the_first_task_first_metric() -> None:
    summary = {"tasks": ["mc"], "models": {"a": {"mc": {"acc": 0.4}}, "b": {"mc": {"acc": 0.6}}, "c": {}}}
    assert harness.best_of(summary) == ("b", "mc acc 0.600")
    assert harness.best_of({"tasks": ["mc"], "models": {}}) is None


def test_the_interpreter_is_named_or_missing_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(harness.PYTHON_VARIABLE, "/nowhere/python")
    with pytest.raises(BadInputError, match="TANUKI_LM_EVAL_PYTHON: no such interpreter: /nowhere/python"):
        harness.harness_python()
    monkeypatch.delenv(harness.PYTHON_VARIABLE)
    monkeypatch.setattr(harness.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BadInputError, match=r"tanuki\[harness\].*python-dateutil"):
        harness.harness_python()


def test_the_shipped_task_is_well_formed() -> None:
    task = yaml.safe_load((harness.SHIPPED_TASKS / "tanuki_ja_mc.yaml").read_text())
    data = harness.SHIPPED_TASKS / task["dataset_kwargs"]["data_files"]["test"]
    docs = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    assert task["output_type"] == "multiple_choice" and len(docs) >= 20
    assert all(0 <= doc["answer"] < len(doc["choices"]) and len(set(doc["choices"])) == len(doc["choices"])
               for doc in docs)


def test_an_unreachable_target_exits_2_naming_its_url(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"mode": "harness", "targets": [{"base_url": "http://127.0.0.1:9/v1",
                                                                        "model": "m"}]}))
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "eval", "--config", str(recipe),
                           "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          env={"TANUKI_LM_EVAL_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and "http://127.0.0.1:9/v1/models" in done.stderr, done.stderr[-2000:]
