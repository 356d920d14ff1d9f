"""``tanuki synth`` end to end on a debug model: vLLM in Ray Data actors (an in-process Ray) or in the
job's own process (``ray.mode: process``), killed with SIGKILL after its first shard and rerun to
completion without duplicates; and the endpoint engine against the session's shared vLLM server,
giving records of the same shape."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serving_fixtures import API_KEY, SERVED_NAME

pytestmark = pytest.mark.slow

STYLES = ["qa", "news", "poem"]
DOCUMENTS = ["東京は日本の首都で、多くの人が暮らしている。電車や地下鉄が発達している。",
             "味噌汁は味噌を出汁で溶いた汁物で、豆腐やわかめを入れることが多い。" * 8,  # longer than a span
             "富士山は日本一高い山で、夏には多くの登山者が山頂を目指す。"]


def write_recipe(tmp_path: Path, **engine: object) -> Path:
    documents = tmp_path / "docs.jsonl"
    documents.write_text("\n".join([*(json.dumps({"id": f"doc{i}", "text": text}, ensure_ascii=False)
                                      for i, text in enumerate(DOCUMENTS)), "{broken"]) + "\n")
    recipe = tmp_path / "synth.yaml"
    recipe.write_text(yaml.safe_dump({
        "documents": [{"name": "ja", "path": str(documents)}], "styles": STYLES, "rewrites_per_document": 3,
        "rewrite": {"span_min_chars": 60, "span_max_chars": 120, "max_tokens": 24},
        "dialogues": {"count": 2, "turns": 2, "max_tokens": 24},
        # the debug model writes noise: keep what the length and language filters would drop, so the
        # records' shapes reach every output (the filters have their own tests)
        "filters": {"languages": [], "min_chars": 1, "max_words_per_punctuation": 10000},
        "shard_size": 3, **engine}, allow_unicode=True))
    return recipe


def synth(recipe: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``tanuki synth`` in its own process group; whatever it leaves running is killed after."""
    process = subprocess.Popen([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "--config", str(recipe),
                                "--output-dir", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env}, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=900)
    finally:
        kill_session(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def kill_session(session: int) -> None:
    """SIGKILL every process of a session: Ray workers and their vLLM engine processes have process
    groups of their own, and an engine outlives a killed driver (in a pod, the container's end
    takes them all)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # after the command: state, ppid, pgrp, session
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)


def check_outputs(out: Path) -> list[dict]:
    generated = [json.loads(line) for line in (out / "generated.jsonl").read_text().splitlines()]
    assert len(generated) == len(DOCUMENTS) * len(STYLES) + 2
    assert len({record["id"] for record in generated}) == len(generated)  # no duplicates
    rewrites = [record for record in generated if record["kind"] == "rewrite"]
    assert {(record["source_id"], record["style"]) for record in rewrites} == {
        (f"doc{i}", style) for i in range(len(DOCUMENTS)) for style in STYLES}
    for record in rewrites:
        assert record["text"] and record["generated_tokens"] > 0 and record["source_chars"] <= 120
        assert record["sampling"] == {"temperature": 0.1, "max_tokens": 24, "top_p": 1.0, "top_k": 0,
                                      "repetition_penalty": 1.2}
    dialogues = [record for record in generated if record["kind"] == "dialogue"]
    for record in dialogues:
        assert [message["role"] for message in record["messages"]] == ["user", "assistant"] * 2, record
        assert record["persona"] and record["personality"] and record["task"]
        assert record["sampling"]["question"]["top_k"] == 50 and record["sampling"]["answer"]["temperature"] == 0.01
    outputs = json.loads((out / "outputs.json").read_text())
    for key in ("dataset", "dialogues", "generated", "stats"):
        assert Path(outputs[key]).is_file()
    kept = [json.loads(line) for line in (out / "kept.jsonl").read_text().splitlines()]
    dropped = (out / "dropped.jsonl").read_text().splitlines()
    assert len(kept) + len(dropped) == len(generated)
    dataset = [json.loads(line) for line in Path(outputs["dataset"]).read_text().splitlines()]
    assert len(dataset) == len(kept) and all(isinstance(row["text"], str) and row["text"] for row in dataset)
    chats = [json.loads(line) for line in Path(outputs["dialogues"]).read_text().splitlines()]
    assert chats and all(set(chat) == {"id", "messages", "persona", "personality", "task"} for chat in chats)
    assert any("<|im_start|>assistant\n" in row["text"] for row in dataset)  # dialogues in the chat template
    stats = json.loads(Path(outputs["stats"]).read_text())
    assert [where.rsplit("/", 1)[-1] for where in stats["input_problems"]["not JSON"]["first"]] == ["docs.jsonl:4"]
    assert stats["filter"]["kept"] == len(kept)
    return generated


@pytest.mark.parametrize("mode", ["local", "process"])
def test_vllm_engine_resumes_after_sigkill_without_duplicates(checkpoints: dict[str, Path], tmp_path: Path,
                                                              mode: str) -> None:
    recipe = write_recipe(tmp_path, generator={"path": str(checkpoints["a"]), "max_model_len": 256,
                                               "dtype": "float32"}, ray={"mode": mode})
    out = tmp_path / "out"
    killed = synth(recipe, out, TANUKI_FAULT_KILL_AT="synth:after-shard")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # Ray Data may finish any shard first; exactly one is complete when the kill lands.
    written = list((out / "shards").glob("shard-*.jsonl"))
    assert len(written) == 1 and not (out / "outputs.json").exists(), written
    finished, = written
    first, first_inode = finished.read_text(), finished.stat().st_ino
    done = synth(recipe, out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 shards; 3 to generate" in done.stdout and "records/s" in done.stdout
    assert finished.read_text() == first and finished.stat().st_ino == first_inode  # not generated again
    check_outputs(out)
    # the engine ran on every core of this machine, not the one CPU its Ray actor reserved
    assert json.loads((out / "stats.json").read_text())["engine_threads"] == len(os.sched_getaffinity(0))
    ray_started = "Started a local Ray instance" in done.stdout + done.stderr
    assert ray_started == (mode == "local"), (done.stdout + done.stderr)[-2000:]


def test_endpoint_engine_against_a_vllm_server_gives_the_same_records(vllm_url: str, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path, engine="endpoint",
                          endpoint={"base_url": vllm_url, "model": SERVED_NAME, "api_key_env": "SYNTH_KEY",
                                    "concurrency": 4})
    done = synth(recipe, tmp_path / "out", SYNTH_KEY=API_KEY)
    assert done.returncode == 0, done.stderr[-3000:]
    check_outputs(tmp_path / "out")


@pytest.mark.parametrize("mode", ["local", "process"])
def test_a_checkpoint_vllm_cannot_load_fails_with_vllms_reason(checkpoints: dict[str, Path], tmp_path: Path,
                                                               mode: str) -> None:
    recipe = write_recipe(tmp_path, generator={"path": str(checkpoints["broken"]), "max_model_len": 256,
                                               "dtype": "float32"}, ray={"mode": mode})
    done = synth(recipe, tmp_path / "out")
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tanuki synth: error: generator.path: vLLM could not start on {checkpoints['broken']}")
    assert "safetensors" in last.lower() or "header" in last.lower(), last
