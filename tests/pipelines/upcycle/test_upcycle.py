"""Dense → MoE upcycling: stock transformers loads the result, and with no noise it computes
exactly what the dense model computes; noise, router and streaming memory are as requested."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from tanuki_pipelines.upcycle.config import UpcycleConfig
from tanuki_pipelines.upcycle.convert import upcycle

HIDDEN, FFN, LAYERS = 64, 160, 3


@pytest.fixture(scope="module")
def dense_dir(tmp_path_factory: pytest.TempPathFactory, debug_tokenizer_dir: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("dense") / "dense"
    model.save_pretrained(out, max_shard_size="400KB")  # several shards
    for path in debug_tokenizer_dir.iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    assert len(list(out.glob("*.safetensors"))) > 2
    return out


def convert(dense_dir: Path, out: Path, **fields) -> Path:
    config = UpcycleConfig(source=dense_dir, num_experts=4, top_k=2, **fields)
    outputs = upcycle(config, out, progress=False)
    assert outputs["checkpoint"] == str(out.resolve())
    return out


def logits(model_dir: Path, cls_name: str) -> torch.Tensor:
    import transformers

    model = getattr(transformers, cls_name).from_pretrained(model_dir, dtype=torch.float32)
    assert type(model).__name__ == cls_name
    ids = torch.randint(4, 4096, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(input_ids=ids).logits


@pytest.mark.parametrize("router", [{"type": "random", "std": 0.02}, {"type": "zeros"}])
def test_no_noise_moe_computes_the_dense_model(dense_dir: Path, tmp_path: Path, router: dict) -> None:
    out = convert(dense_dir, tmp_path / "moe", noise_std=0.0, router_init=router)
    dense, moe = logits(dense_dir, "LlamaForCausalLM"), logits(out, "MixtralForCausalLM")
    assert (dense - moe).abs().max().item() <= 1e-4
    config = json.loads((out / "config.json").read_text())
    assert (config["num_local_experts"], config["num_experts_per_tok"], config["model_type"]) == (4, 2, "mixtral")
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).encode("東京", add_special_tokens=False)


def read_all(directory: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for shard in sorted(directory.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as handle:
            tensors.update({key: handle.get_tensor(key) for key in handle.keys()})
    return tensors


def test_noise_std_router_shape_and_dtype(dense_dir: Path, tmp_path: Path) -> None:
    out = convert(dense_dir, tmp_path / "moe", noise_std=0.01, router_init={"type": "random", "std": 0.02})
    dense, moe = read_all(dense_dir), read_all(out)
    gate = dense["model.layers.1.mlp.gate_proj.weight"]
    experts = [moe[f"model.layers.1.block_sparse_moe.experts.{e}.w1.weight"] for e in range(4)]
    for expert in experts:
        assert expert.shape == gate.shape and expert.dtype == gate.dtype
        assert (expert - gate).std().item() == pytest.approx(0.01, rel=0.1)
    assert not torch.equal(experts[0], experts[1])
    router = moe["model.layers.1.block_sparse_moe.gate.weight"]
    assert router.shape == (4, HIDDEN) and router.dtype == gate.dtype
    assert router.std().item() == pytest.approx(0.02, rel=0.2)
    assert torch.equal(moe["model.layers.1.self_attn.q_proj.weight"], dense["model.layers.1.self_attn.q_proj.weight"])
    assert not any(".mlp." in key for key in moe)


def test_same_seed_same_checkpoint(dense_dir: Path, tmp_path: Path) -> None:
    a = read_all(convert(dense_dir, tmp_path / "a", noise_std=0.01))
    b = read_all(convert(dense_dir, tmp_path / "b", noise_std=0.01))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


PEAK_SCRIPT = r"""
import json, sys, torch, safetensors, tqdm  # imports first: only the conversion is measured
from pathlib import Path
from tanuki_pipelines.upcycle.config import UpcycleConfig
from tanuki_pipelines.upcycle.convert import upcycle

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM)
before = status("VmRSS")
upcycle(UpcycleConfig(source=sys.argv[1], num_experts=4, top_k=2, noise_std=0.001), Path(sys.argv[2]),
        progress=False)
print(json.dumps({"peak_growth": status("VmHWM") - before}))
"""


@pytest.mark.slow  # runs tanuki upcycle in subprocesses
def test_peak_memory_stays_near_one_shard(tmp_path: Path) -> None:
    """The writer's budget is three half-shards (the output shard being filled, the one in flight on
    the writer thread and safetensors' serialisation copy of it) plus one input tensor and the
    allocator's slack: under two input shards, whatever the checkpoint's total size. The model is
    big enough that holding its input (> 4 shards) or its output (> 12) cannot pass."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, hidden_size=256, intermediate_size=1024, num_hidden_layers=24,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    dense = tmp_path / "dense"
    LlamaForCausalLM(config).save_pretrained(dense, max_shard_size="24MB")
    shards = sorted(dense.glob("*.safetensors"))
    largest = max(path.stat().st_size for path in shards)
    total = sum(path.stat().st_size for path in shards)
    assert len(shards) >= 4 and total > 4 * largest
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(dense), str(tmp_path / "moe")],
                            capture_output=True, text=True, check=True)
    growth = json.loads(result.stdout.strip().splitlines()[-1])["peak_growth"]
    moe_total = sum(p.stat().st_size for p in (tmp_path / "moe").glob("*.safetensors"))
    assert moe_total > 2.5 * total  # four copies of every FFN really were written
    print(f"peak RSS growth {growth / 1e6:.1f} MB, largest shard {largest / 1e6:.1f} MB, total {total / 1e6:.1f} MB")
    assert growth < 2 * largest, f"peak RSS grew {growth / 1e6:.1f} MB; largest shard {largest / 1e6:.1f} MB"


@pytest.mark.slow  # runs tanuki upcycle in subprocesses
def test_cli_writes_outputs_and_names_bad_input(dense_dir: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "tanuki_pipelines.cli", "upcycle",
            "--config", str(Path(__file__).resolve().parents[3] / "pipelines/recipes/tanuki-8x8b/upcycle.yaml"),
            "--set", f"source={dense_dir}", "--set", "num_experts=2", "--output-dir", str(tmp_path / "run")]
    done = subprocess.run(base, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = json.loads((tmp_path / "run" / "outputs.json").read_text())
    assert Path(outputs["checkpoint"]).is_dir() and outputs["num_experts"] == 2
    normed = subprocess.run([*base[:-1], str(tmp_path / "gn"), "--set", "gate_norm.enabled=true"],
                            capture_output=True, text=True)
    assert normed.returncode == 0, normed.stderr[-3000:]
    config = json.loads((tmp_path / "gn" / "checkpoint" / "config.json").read_text())
    assert (config["architectures"], config["model_type"], config["gate_norm_scale"]) == (
        ["TanukiMoeForCausalLM"], "tanuki_moe", 1.0)
    bad = subprocess.run([*base, "--set", "top_k=9"], capture_output=True, text=True)
    assert bad.returncode == 2 and "top_k" in bad.stderr
    missing = subprocess.run([*base[:-2], "--set", f"source={tmp_path / 'nope'}", "--output-dir",
                              str(tmp_path / "x")], capture_output=True, text=True)
    assert missing.returncode == 2 and "source" in missing.stderr


def _complete(checkpoint: Path) -> bool:
    """Every shard the index names is there and readable, with the config."""
    index = json.loads((checkpoint / "model.safetensors.index.json").read_text())
    for shard in set(index["weight_map"].values()):
        with safe_open(str(checkpoint / shard), framework="pt") as handle:
            for key in handle.keys():
                handle.get_tensor(key)
    return (checkpoint / "config.json").is_file()


@pytest.mark.slow  # runs tanuki upcycle in subprocesses
@pytest.mark.parametrize("point", ["checkpoint:shard-2", "checkpoint:before-rename", "checkpoint:after-rename",
                                   "outputs:before-write"])
def test_sigkill_while_publishing_leaves_no_or_a_complete_checkpoint_and_the_rerun_completes(
        dense_dir: Path, tmp_path: Path, point: str) -> None:
    from tanuki_pipelines.publish import FAULT_ENV

    recipe = tmp_path / "upcycle.yaml"
    recipe.write_text(f"source: {dense_dir}\nnum_experts: 4\ntop_k: 2\nmax_shard_size: 300KB\n")

    def run(out: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "upcycle", "--config", str(recipe),
                               "--output-dir", str(out)], capture_output=True, text=True, timeout=300,
                              env={**__import__("os").environ, **env})

    reference = run(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = {p.name: p.read_bytes() for p in (tmp_path / "reference" / "checkpoint").glob("*.safetensors")}
    assert len(expected) > 2
    out = tmp_path / "out"
    killed = run(out, **{FAULT_ENV: point})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (out / "outputs.json").exists()
    checkpoint = out / "checkpoint"
    # before the rename there is no checkpoint (only .tmp-checkpoint); after it, a complete one
    assert checkpoint.exists() == (point in ("checkpoint:after-rename", "outputs:before-write"))
    assert not checkpoint.exists() or _complete(checkpoint)
    rerun = run(out)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["checkpoint"] == str(checkpoint) and _complete(checkpoint)
    assert {p.name: p.read_bytes() for p in checkpoint.glob("*.safetensors")} == expected  # seeded: same bytes
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".old-*"))
    # killed over a finished run, the earlier checkpoint stays whole until the new one replaces it
    again = run(out, **{FAULT_ENV: point})
    assert again.returncode == -9 and _complete(checkpoint) and not (out / "outputs.json").exists()
