"""Throughput of ``tanuki pretrain`` against a plain PyTorch AdamW loop, measured in one run.

The baseline is the training loop one would write by hand for the same work: the same debug
Llama from the same init, the same packed tokens in the same order (the recipe's own sampler),
the same batch shape, learning-rate schedule, gradient clipping and z-loss, fp32, one process —
only without DeepSpeed and our fused loss. Both sides run with the same number of CPU threads
(``--threads``, pinned through OMP_NUM_THREADS for the tanuki process and
``torch.set_num_threads`` for the baseline), and neither side's checkpoint writes are timed:
the rates are per optimizer step, median over the steps after a warm-up. The tokenizer and the
packed data are built once before either side runs; the sides alternate which goes first over
``--rounds`` rounds (a fresh tanuki run each round). Prints tokens/s of each and tanuki ÷ baseline;
the goal is ≥ 1.0×.

    .venv/bin/python benchmarks/pretrain_throughput.py [--steps 60] [--seq-len 128] [--threads N] [--rounds 3] [--smoke]
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

from benchkit import Report, add_common_arguments, interleave, machine_facts

WARMUP_STEPS = 5


def recipe_sets(inputs: Path, steps: int, seq_len: int, micro: int, zero_stage: int) -> list[str]:
    return [f"train.steps={steps}", f"train.seq_len={seq_len}", f"train.micro_batch_size={micro}",
            "train.grad_accum_steps=1", f"checkpoint.every_steps={steps}", f"train.zero_stage={zero_stage}",
            f"tokenizer.path={inputs / 'tokenizer'}", "tokenizer.train=null"]


def build_inputs(inputs: Path, sets: list[str]) -> tuple[object, list[object]]:
    """The tokenizer and packed data both sides train on (the recipe's own preparation), built once."""
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.pretrain.config import PretrainConfig
    from tanuki_pipelines.pretrain.data import open_packed
    from tanuki_pipelines.pretrain.prepare import prepare
    from tanuki_pipelines.recipes import shipped_recipe

    config = load_recipe(PretrainConfig, shipped_recipe("debug", "pretrain"),
                         [s for s in sets if not s.startswith("tokenizer.")])
    _, store = prepare(config, inputs)  # trains the tokenizer into inputs/tokenizer, builds the token store
    return config, open_packed(store, config.data.sources, config.train.seq_len)


def run_tanuki(out: Path, sets: list[str], threads: int) -> float:
    from tanuki_pipelines.recipes import shipped_recipe

    command = [sys.executable, "-m", "tanuki_pipelines.cli", "pretrain",
               "--config", str(shipped_recipe("debug", "pretrain")), "--output-dir", str(out),
               "--nproc-per-node", "1", *[a for s in sets for a in ("--set", s)]]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["tokens_per_s"] for r in records[WARMUP_STEPS:])


def run_baseline(config: object, arrays: list[object], threads: int) -> float:
    """Plain PyTorch as one would write it: same model init, samples and LR schedule; torch's
    default AdamW; cross-entropy plus a separately computed z-loss; no DeepSpeed."""
    import numpy as np
    import torch

    from tanuki_pipelines.pretrain.mixture import MixtureSampler
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.pretrain.schedule import learning_rate
    from tanuki_pipelines.pretrain.train import parameter_groups

    torch.set_num_threads(threads)
    train = config.train
    sampler = MixtureSampler(config.data, [len(a) for a in arrays], train.steps, train.micro_batch_size, train.seed)
    torch.manual_seed(train.seed)
    model = build_model(config.model, dtype=torch.float32)
    optimizer = torch.optim.AdamW(parameter_groups(model, train.weight_decay), lr=train.lr,
                                  betas=train.betas, eps=train.eps)
    rates = []
    for step in range(train.steps):
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
    return statistics.median(rates[WARMUP_STEPS:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, rounds=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--zero-stage", type=int, default=1, choices=[0, 1, 2, 3])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPU threads of both sides (default: the cores available)")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.rounds = WARMUP_STEPS + 3, 1
    facts = machine_facts({"tanuki pretrain (1 rank)": args.threads, "plain PyTorch loop": args.threads})
    report = Report("pretrain_throughput", ["tanuki pretrain", "plain PyTorch AdamW loop", "tanuki ÷ baseline"], facts)
    print(f"debug model, 1 process, seq_len {args.seq_len}, micro-batch {args.micro_batch}, {args.steps} steps "
          f"(median after {WARMUP_STEPS}), ZeRO-{args.zero_stage}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tanuki-bench-") as tmp:
        root = Path(tmp)
        sets = recipe_sets(root / "inputs", args.steps, args.seq_len, args.micro_batch, args.zero_stage)
        config, arrays = build_inputs(root / "inputs", sets)
        runs = iter(range(10**6))
        rates = interleave({"tanuki": lambda: run_tanuki(root / f"run-{next(runs)}", sets, args.threads),
                            "baseline": lambda: run_baseline(config, arrays, args.threads)}, args.rounds)
    report.side("tanuki pretrain", rates["tanuki"], "tokens/s")
    report.side("plain PyTorch AdamW loop", rates["baseline"], "tokens/s")
    report.ratio("tanuki ÷ baseline", rates["tanuki"], rates["baseline"], "≥ 1.0×")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
