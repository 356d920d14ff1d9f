"""Upcycled MoE versus dense, same tokens (toy scale, CPU, a couple of minutes).

1. Pretrain the debug dense model on Japanese + English (checkpoint A).
2. Upcycle A into a 4-expert top-2 MoE (noise 0.001).
3. From A, continue training (a) the MoE and (b) the dense model for the same steps and tokens.
4. Print both models' loss on held-out text (the synthetic split, never trained on).

The literature (sparse upcycling; Tanuki-8x8B) says (a) wins for the same tokens; this reports
what this toy run shows. Not a speed benchmark: the comparison is quality at equal work — both
arms start from the same checkpoint A and see the same tokens in the same order (same recipe,
seed and step count), so the only difference is the architecture.

    .venv/bin/python benchmarks/upcycle_vs_dense.py [--base-steps 80] [--steps 60] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchkit import Report, machine_facts

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "pipelines" / "recipes" / "debug" / "pretrain.yaml"
HELD_OUT = REPO / "pipelines" / "recipes" / "debug" / "corpus" / "synth.jsonl"
COMMON = ["train.seq_len=128", "train.micro_batch_size=4", "train.grad_accum_steps=1", "data.phases=[]",
          "data.sources.2.weight=0", "train.warmup_steps=2"]


def pretrain(out: Path, steps: int, *extra: str, ranks: int = 2) -> Path:
    sets = [f"train.steps={steps}", f"checkpoint.every_steps={steps}", *COMMON, *extra]
    command = [sys.executable, "-m", "tanuki_pipelines.cli", "pretrain", "--config", str(RECIPE),
               "--output-dir", str(out), "--nproc-per-node", str(ranks), *[a for s in sets for a in ("--set", s)]]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return Path(json.loads((out / "outputs.json").read_text())["checkpoint"])


def held_out_loss(checkpoint: Path, seq_len: int = 128) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from legacy_packing import pack
    from tanuki_pipelines.config import DataSource
    from tanuki_pipelines.corpus_io import iter_texts

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    documents = list(iter_texts(DataSource(name="heldout", path=HELD_OUT)))
    token_lists = tokenizer(documents, add_special_tokens=False)["input_ids"]
    blocks = torch.from_numpy(pack(token_lists, seq_len, tokenizer.eos_token_id).astype("int64"))
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in blocks.split(16):
            logits = model(input_ids=batch[:, :-1]).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     batch[:, 1:].reshape(-1), reduction="sum")
            total, count = total + loss.item(), count + batch[:, 1:].numel()
    return total / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-steps", type=int, default=80)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--ranks", type=int, default=2, help="training processes of each run")
    parser.add_argument("--smoke", action="store_true", help="a few steps on one rank: checks the script, not the claim")
    args = parser.parse_args()
    if args.smoke:
        args.base_steps, args.steps, args.ranks = 4, 2, 1

    from tanuki_pipelines.upcycle.config import UpcycleConfig
    from tanuki_pipelines.upcycle.convert import upcycle

    report = Report("upcycle_vs_dense", ["checkpoint A (start)", f"(a) upcycled MoE x{args.experts}",
                                         "(b) dense, same tokens", "MoE − dense"],
                    machine_facts({"each training run": f"{args.ranks} ranks × 1 thread (torchrun's default)"}))
    with tempfile.TemporaryDirectory(prefix="tanuki-upcycle-vs-dense-") as tmp:
        root = Path(tmp)
        base = pretrain(root / "base", args.base_steps, ranks=args.ranks)
        upcycle(UpcycleConfig(source=base, num_experts=args.experts, top_k=2, noise_std=0.001),
                root / "moe-init", progress=False)
        continuation = ["train.seed=1", "train.lr=1.0e-3", "train.min_lr=1.0e-4", "tokenizer.train=null"]
        moe = pretrain(root / "moe", args.steps, *continuation, f"tokenizer.path={base}",
                       f"init_from={root / 'moe-init'}", f"model.num_experts={args.experts}",
                       "model.experts_per_token=2", ranks=args.ranks)
        dense = pretrain(root / "dense", args.steps, *continuation, f"tokenizer.path={base}",
                         f"init_from={base}", ranks=args.ranks)
        start = held_out_loss(base)
        moe_loss, dense_loss = held_out_loss(moe), held_out_loss(dense)
    print(f"held-out loss ({HELD_OUT.name}), {args.steps} continuation steps after {args.base_steps} dense steps:")
    report.value("checkpoint A (start)", start, "nats/token")
    report.value(f"(a) upcycled MoE x{args.experts}", moe_loss, "nats/token")
    report.value("(b) dense, same tokens", dense_loss, "nats/token")
    report.value("MoE − dense", moe_loss - dense_loss, f"nats/token ({'MoE' if moe_loss < dense_loss else 'dense'} lower)")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
