"""Throughput of ``tanuki pretrain`` against a plain PyTorch AdamW loop, measured in one run.

The baseline is the training loop one would write by hand for the same work: the same debug
Llama from the same init, the same packed tokens in the same order (the recipe's own sampler),
the same batch shape, learning-rate schedule, gradient clipping and z-loss, fp32, one process —
only without DeepSpeed and our fused loss. Both sides run with the same number of CPU threads
(``--threads``, pinned through OMP_NUM_THREADS for the tanuki process and
``torch.set_num_threads`` for the baseline), and neither side's checkpoint writes are timed:
the rates are per optimizer step, median over the steps after a warm-up. Prints tokens/s of each
and tanuki ÷ baseline; the goal is ≥ 1.0×.

    .venv/bin/python benchmarks/pretrain_throughput.py [--steps 60] [--seq-len 128] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARMUP_STEPS = 5


def run_tanuki(out: Path, steps: int, seq_len: int, micro: int, zero_stage: int, threads: int) -> list[float]:
    from tanuki_pipelines.recipes import shipped_recipe

    sets = [f"train.steps={steps}", f"train.seq_len={seq_len}", f"train.micro_batch_size={micro}",
            "train.grad_accum_steps=1", f"checkpoint.every_steps={steps}", f"train.zero_stage={zero_stage}"]
    command = [sys.executable, "-m", "tanuki_pipelines.cli", "pretrain",
               "--config", str(shipped_recipe("debug", "pretrain")), "--output-dir", str(out),
               "--nproc-per-node", "1", *[a for s in sets for a in ("--set", s)]]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["tokens_per_s"] for r in records[WARMUP_STEPS:]]


def run_baseline(out: Path, steps: int, threads: int) -> list[float]:
    """Plain PyTorch as one would write it: same model init, samples and LR schedule; torch's
    default AdamW; cross-entropy plus a separately computed z-loss; no DeepSpeed."""
    import numpy as np
    import torch

    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.pretrain.config import PretrainConfig
    from tanuki_pipelines.pretrain.data import load_packed
    from tanuki_pipelines.pretrain.mixture import MixtureSampler
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.pretrain.schedule import learning_rate
    from tanuki_pipelines.pretrain.train import parameter_groups

    torch.set_num_threads(threads)
    config = load_recipe(PretrainConfig, out / "recipe.yaml")
    train = config.train
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    arrays = load_packed([Path(manifest[s.name]) for s in config.data.sources])
    sampler = MixtureSampler(config.data, [len(a) for a in arrays], train.steps, train.micro_batch_size, train.seed)
    torch.manual_seed(train.seed)
    model = build_model(config.model, dtype=torch.float32)
    optimizer = torch.optim.AdamW(parameter_groups(model, train.weight_decay), lr=train.lr,
                                  betas=train.betas, eps=train.eps)
    rates = []
    for step in range(steps):
        started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, train)
        rows = sampler.step_batch(step)
        tokens = torch.from_numpy(np.stack([arrays[s][i] for s, i in rows]).astype(np.int64))
        logits = model(input_ids=tokens[:, :-1]).logits.float()
        labels = tokens[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss = loss + train.z_loss * torch.logsumexp(logits, dim=-1).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        float(loss.detach())
        rates.append(len(rows) * train.seq_len / (time.perf_counter() - started))
    return rates[WARMUP_STEPS:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--zero-stage", type=int, default=1, choices=[0, 1, 2, 3])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPU threads of both sides (default: the cores available)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tanuki-bench-") as tmp:
        out = Path(tmp) / "run"
        tanuki = statistics.median(run_tanuki(out, args.steps, args.seq_len, args.micro_batch, args.zero_stage,
                                              args.threads))
        baseline = statistics.median(run_baseline(out, args.steps, args.threads))
    print(f"debug model, 1 process, {args.threads} threads, seq_len {args.seq_len}, micro-batch {args.micro_batch}, "
          f"{args.steps} steps")
    print(f"tanuki pretrain (recipe ZeRO-{args.zero_stage}): {tanuki:10.0f} tokens/s")
    print(f"plain PyTorch AdamW loop:          {baseline:10.0f} tokens/s")
    print(f"ratio tanuki / baseline:           {tanuki / baseline:10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
