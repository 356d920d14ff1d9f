"""Real pretraining runs: torchrun + DeepSpeed (gloo, CPU) on the debug model and corpus.

One uninterrupted ZeRO-2 run is the reference; a run killed with SIGKILL after a checkpoint and a
run killed while writing a checkpoint must, once restarted, reproduce its losses bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tanuki_pipelines.config import load_recipe
from tanuki_pipelines.pretrain.checkpoint import LATEST_FILE, complete_checkpoints
from tanuki_pipelines.pretrain.config import PretrainConfig
from tanuki_pipelines.pretrain.model import build_model
from tanuki_pipelines.publish import FAULT_ENV
from tanuki_pipelines.recipes import shipped_recipe

pytestmark = pytest.mark.slow

STEPS = 20
FAST = [f"train.steps={STEPS}", "train.seq_len=64", "train.micro_batch_size=2", "train.grad_accum_steps=2",
        "checkpoint.every_steps=5", "checkpoint.keep_last=5"]


def command(out: Path, tokenizer: Path, extra: list[str], nproc: int = 2) -> list[str]:
    sets = [*FAST, "tokenizer.train=null", f"tokenizer.path={tokenizer}", *extra]
    return [sys.executable, "-m", "tanuki_pipelines.cli", "pretrain",
            "--config", str(shipped_recipe("debug", "pretrain")), "--output-dir", str(out),
            "--nproc-per-node", str(nproc), *[arg for item in sets for arg in ("--set", item)]]


def run(out: Path, tokenizer: Path, extra: list[str] = (), env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(out, tokenizer, list(extra)), capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def losses(out: Path) -> dict[int, float]:
    return {record["step"]: record["loss"] for record in metrics(out)}


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "model.safetensors")


def loss_fell(out: Path) -> bool:
    values = [record["loss"] for record in metrics(out)]
    return sum(values[-3:]) / 3 < sum(values[:3]) / 3 - 0.5


@pytest.fixture(scope="module")
def zero2_run(tmp_path_factory: pytest.TempPathFactory, debug_tokenizer_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("zero2")
    result = run(out, debug_tokenizer_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def test_zero2_two_processes_loss_falls_and_every_tensor_changed(zero2_run: Path) -> None:
    assert [record["step"] for record in metrics(zero2_run)] == list(range(1, STEPS + 1))
    assert loss_fell(zero2_run)
    config = load_recipe(PretrainConfig, zero2_run / "recipe.yaml")
    torch.manual_seed(config.train.seed)
    initial = build_model(config.model, dtype=torch.float32).state_dict()
    final = weights(Path(json.loads((zero2_run / "outputs.json").read_text())["checkpoint"]))
    assert set(final) == set(initial)
    unchanged = [name for name in final if torch.equal(final[name], initial[name])]
    assert unchanged == []


def test_metrics_outputs_and_loss_curve(zero2_run: Path) -> None:
    record = metrics(zero2_run)[-1]
    assert {"loss", "z_loss", "lr", "grad_norm", "tokens", "tokens_per_s", "mfu", "mix"} <= set(record)
    assert record["tokens"] == STEPS * 2 * 2 * 2 * 64
    assert 0 < record["mfu"] < 1 and record["z_loss"] > 0
    outputs = json.loads((zero2_run / "outputs.json").read_text())
    assert Path(outputs["checkpoint"]).name == f"step_{STEPS:08d}"
    assert (zero2_run / "checkpoints" / LATEST_FILE).read_text().strip() == f"step_{STEPS:08d}"
    assert (zero2_run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthetic_data_only_in_the_late_phase(zero2_run: Path) -> None:
    records = metrics(zero2_run)
    # step k (1-based) sampled at fraction (k-1)/STEPS; the recipe keeps synth at 0 until 0.8
    early = [r["mix"]["synth"] for r in records if (r["step"] - 1) / STEPS <= 0.8]
    late = [r["mix"]["synth"] for r in records if (r["step"] - 1) / STEPS > 0.8]
    assert sum(early) == 0 and sum(late) > 0
    japanese = sum(r["mix"]["ja"] for r in records)
    english = sum(r["mix"]["en"] for r in records)
    assert 1.1 < japanese / english < 2.2


def test_hf_export_loads_with_stock_transformers(zero2_run: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    checkpoint = json.loads((zero2_run / "outputs.json").read_text())["checkpoint"]
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert type(model).__name__ == "LlamaForCausalLM"
    prompt = tokenizer("今日は", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert generated.shape[1] > prompt.input_ids.shape[1]
    assert isinstance(tokenizer.decode(generated[0]), str)


def test_zero3_run(tmp_path: Path, debug_tokenizer_dir: Path) -> None:
    result = run(tmp_path, debug_tokenizer_dir, ["train.zero_stage=3"])
    assert result.returncode == 0, result.stderr[-4000:]
    assert loss_fell(tmp_path)
    first, *_, last = complete_checkpoints(tmp_path / "checkpoints")
    before, after = weights(first), weights(last)
    assert [name for name in after if torch.equal(before[name], after[name])] == []
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(last).config.num_hidden_layers == 2


def test_sigkill_then_rerun_resumes_bit_identically(tmp_path: Path, debug_tokenizer_dir: Path,
                                                    zero2_run: Path) -> None:
    process = subprocess.Popen(command(tmp_path, debug_tokenizer_dir, []), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = tmp_path / "checkpoints" / LATEST_FILE
    deadline = time.monotonic() + 300
    while not latest.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "outputs.json").exists(), "the run finished before it could be killed"
    resumed_from = int(latest.read_text().strip().removeprefix("step_"))
    assert resumed_from < STEPS

    result = run(tmp_path, debug_tokenizer_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "resumed from" in result.stdout
    reference, rerun = losses(zero2_run), losses(tmp_path)
    assert sorted(rerun) == list(range(1, STEPS + 1))
    after_resume = [step for step in rerun if step > resumed_from]
    assert after_resume and all(rerun[step] == reference[step] for step in after_resume)
    final = f"step_{STEPS:08d}"
    assert all(torch.equal(a, b) for a, b in zip(weights(tmp_path / "checkpoints" / final).values(),
                                                 weights(zero2_run / "checkpoints" / final).values(), strict=True))


@pytest.mark.parametrize("point", ["before-rename", "after-rename"])
def test_crash_while_saving_leaves_latest_on_previous_checkpoint(tmp_path: Path, debug_tokenizer_dir: Path,
                                                                zero2_run: Path, point: str) -> None:
    # SIGKILL global rank 0 with step 10's checkpoint fsynced: just before its rename, or renamed
    # but before `latest` names it
    crashed = run(tmp_path, debug_tokenizer_dir, env={FAULT_ENV: f"step_00000010:{point}"})
    assert crashed.returncode != 0
    root = tmp_path / "checkpoints"
    assert (root / LATEST_FILE).read_text().strip() == "step_00000005"
    if point == "before-rename":
        assert [p.name for p in complete_checkpoints(root)] == ["step_00000005"]
        assert (root / ".tmp-step_00000010").is_dir()  # the torn one, never named by `latest`
    else:
        assert [p.name for p in complete_checkpoints(root)] == ["step_00000005", "step_00000010"]
    assert not (tmp_path / "outputs.json").exists()

    result = run(tmp_path, debug_tokenizer_dir)
    assert result.returncode == 0, result.stderr[-4000:]
    assert not (root / ".tmp-step_00000010").exists()
    reference, rerun = losses(zero2_run), losses(tmp_path)
    assert all(rerun[step] == reference[step] for step in range(6, STEPS + 1))
    assert json.loads((tmp_path / "outputs.json").read_text())["step"] == STEPS


@pytest.mark.parametrize("problem", ["missing", "empty", "unknown-key"])
def test_bad_input_fails_at_once_naming_the_cause(tmp_path: Path, debug_tokenizer_dir: Path, problem: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    extra = {
        "missing": [f"data.sources.0.path={tmp_path / 'absent.jsonl'}"],
        "empty": [f"data.sources.1.path={empty}"],
        "unknown-key": ["train.learning_rate=1"],
    }[problem]
    result = run(tmp_path / "out", debug_tokenizer_dir, extra)
    assert result.returncode == 2
    expected = {"missing": "absent.jsonl", "empty": "empty.jsonl", "unknown-key": "train.learning_rate"}[problem]
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()
