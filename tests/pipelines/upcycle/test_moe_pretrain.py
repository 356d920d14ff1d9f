"""MoE continued pretraining: the upcycled debug model trains under ZeRO-2 and ZeRO-3 with the
router load-balancing loss, and its experts share the load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tanuki_pipelines.pretrain.config import ModelConfig
from tanuki_pipelines.pretrain.model import build_model
from tanuki_pipelines.recipes import shipped_recipe
from tanuki_pipelines.upcycle.config import UpcycleConfig
from tanuki_pipelines.upcycle.convert import upcycle

pytestmark = pytest.mark.slow
STEPS = 16


@pytest.fixture(scope="module")
def moe_dir(tmp_path_factory: pytest.TempPathFactory, debug_tokenizer_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("moe")
    torch.manual_seed(0)
    build_model(ModelConfig(preset="debug"), dtype=torch.float32).save_pretrained(root / "dense")
    for path in debug_tokenizer_dir.iterdir():
        (root / "dense" / path.name).write_bytes(path.read_bytes())
    upcycle(UpcycleConfig(source=root / "dense", num_experts=4, top_k=2, noise_std=0.01), root / "moe",
            progress=False)
    return root / "moe"


def run(out: Path, moe_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    sets = [f"train.steps={STEPS}", "train.seq_len=64", "train.micro_batch_size=2", "train.grad_accum_steps=2",
            "checkpoint.every_steps=8", "tokenizer.train=null", f"tokenizer.path={moe_dir}",
            f"init_from={moe_dir}", "model.num_experts=4", "model.experts_per_token=2", *extra]
    command = [sys.executable, "-m", "tanuki_pipelines.cli", "pretrain",
               "--config", str(shipped_recipe("debug", "pretrain")), "--output-dir", str(out),
               "--nproc-per-node", "2", *[a for s in sets for a in ("--set", s)]]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_upcycled_model_trains_with_balanced_experts(tmp_path: Path, moe_dir: Path, zero_stage: int) -> None:
    result = run(tmp_path, moe_dir, f"train.zero_stage={zero_stage}")
    assert result.returncode == 0, result.stderr[-4000:]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3
    assert all(r["aux_loss"] > 0 for r in records)
    for layer in records[-1]["expert_load"]:
        assert len(layer) == 4 and abs(sum(layer) - 1) < 1e-3
        assert max(layer) < 0.6  # top-2 of 4: a perfect balance is 0.25 each, collapse would be ~0.5+
    checkpoint = Path(json.loads((tmp_path / "outputs.json").read_text())["checkpoint"])
    files = {path.name for path in checkpoint.iterdir()}
    assert files == {"config.json", "generation_config.json", "model.safetensors", "tokenizer.model",
                     "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "trainer_state.json",
                     "deepspeed"}, files  # nothing of init_from's checkpoint (the tokenizer's home) leaks in
    keys = set()
    for shard in checkpoint.glob("*.safetensors"):
        with safe_open(str(shard), framework="pt") as handle:
            keys |= set(handle.keys())
    assert "model.layers.0.block_sparse_moe.experts.3.w2.weight" in keys  # the layout vLLM reads
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert type(model).__name__ == "MixtralForCausalLM"
    before = AutoModelForCausalLM.from_pretrained(moe_dir).state_dict()
    after = model.state_dict()
    assert [name for name in after if torch.equal(after[name], before[name])] == []


def test_init_from_with_another_shape_is_refused(tmp_path: Path, moe_dir: Path) -> None:
    result = run(tmp_path, moe_dir, "model.num_experts=8")
    assert result.returncode == 2
    assert "init_from" in result.stderr and "num_local_experts" in result.stderr


def test_dense_continuation_exports_the_trained_weights(tmp_path: Path, moe_dir: Path) -> None:
    dense = moe_dir.parent / "dense"
    sets = ["model.num_experts=1", f"init_from={dense}", f"tokenizer.path={dense}"]
    result = run(tmp_path, moe_dir, *sets)
    assert result.returncode == 0, result.stderr[-4000:]
    checkpoint = Path(json.loads((tmp_path / "outputs.json").read_text())["checkpoint"])
    from safetensors.torch import load_file

    before, after = load_file(dense / "model.safetensors"), load_file(checkpoint / "model.safetensors")
    assert [name for name in after if torch.equal(after[name], before[name])] == []
