"""Upcycling throughput against the physical limit of the same writes on the same disk, in one run.

The upcycle reads the dense shards, generates the experts (seeded noise) and hands each output
tensor to its ``ShardWriter``, which serialises, writes and fsyncs each full shard on a background
thread while the next one is generated, inside a staging directory it then publishes (fsync,
rename). Its floor is that write path alone. So the baseline is exactly that path: the same
``ShardWriter`` in the same ``staging`` block, given the upcycle's own output tensors (same names,
shapes, order and shard limit, hence the same bytes and files) already in memory before its clock
starts. Both sides therefore do the same writes with the same overlap machinery; the upcycle also
reads and generates, so upcycle ÷ baseline ≤ 1 is physics and ≥ 0.8 is the goal.

Neither side reads from the page cache: before each side the source shards are dropped from it
(``posix_fadvise(DONTNEED)`` after an fsync, which needs no privileges). Sides alternate which goes
first (``benchkit.interleave``); the ratio is printed only when each side's rounds agree within
``benchkit.MAX_SPREAD``. The upcycle's time is also split into reading, generating the experts'
noise and writing.

    .venv/bin/python benchmarks/upcycle_bandwidth.py [--layers 8] [--experts 8] [--rounds 5] [--smoke]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import Report, add_common_arguments, interleave, machine_facts


def drop_from_page_cache(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def upcycle_output(checkpoint: Path) -> list[list[tuple[str, Any]]]:
    """The tensors of an upcycled checkpoint, shard by shard as the upcycle wrote them."""
    import json

    from safetensors.torch import load_file

    weight_map = json.loads((checkpoint / "model.safetensors.index.json").read_text())["weight_map"]
    return [list(load_file(str(checkpoint / shard)).items()) for shard in sorted(set(weight_map.values()))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, rounds=5)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--experts", type=int, default=8)
    args = parser.parse_args()
    if args.smoke:
        args.layers, args.experts, args.rounds = 2, 2, 2

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tanuki_pipelines.publish import staging
    from tanuki_pipelines.upcycle.config import UpcycleConfig
    from tanuki_pipelines.upcycle.convert import ShardWriter, Timings, output_shard_bytes, upcycle

    cores = len(os.sched_getaffinity(0))
    facts = machine_facts({"upcycle": f"{cores} noise + 1 writer", "baseline": "1 writer"})
    report = Report("upcycle_bandwidth", ["tanuki upcycle", "baseline: its write path alone",
                                          "upcycle ÷ baseline"], facts)
    with tempfile.TemporaryDirectory(prefix="tanuki-upcycle-bench-", dir=os.environ.get("TMPDIR")) as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=8192, hidden_size=512, intermediate_size=2048,
                             num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4)
        LlamaForCausalLM(config).save_pretrained(root / "dense", max_shard_size="50MB")
        sources = sorted((root / "dense").glob("*.safetensors"))
        recipe = UpcycleConfig(source=root / "dense", num_experts=args.experts, top_k=2, noise_std=0.001)
        reference = upcycle(recipe, root / "reference", progress=False)  # the bytes both sides write
        tensors = upcycle_output(root / "reference")
        shard_limit = output_shard_bytes(recipe, sources)
        written = sum(p.stat().st_size for p in (root / "reference").glob("*.safetensors"))
        print(f"dense {args.layers} layers → {args.experts} experts: {written / 1e6:.0f} MB in "
              f"{reference['shards']} shards, {args.rounds} rounds per side", flush=True)
        counter = itertools.count()
        splits: list[dict[str, float]] = []

        def run_upcycle() -> float:
            out = root / f"moe-{next(counter)}"
            drop_from_page_cache(sources)
            started = time.perf_counter()
            outputs = upcycle(recipe, out, progress=False)
            seconds = time.perf_counter() - started
            splits.append({**outputs["seconds"], "total": seconds})
            shutil.rmtree(out)
            return written / seconds

        def run_baseline() -> float:
            out = root / f"baseline-{next(counter)}"
            drop_from_page_cache(sources)
            started = time.perf_counter()
            with staging(out) as staged:
                writer = ShardWriter(staged, shard_limit, Timings(), label=out.name)
                for shard in tensors:  # the same files: each shard's tensors, then its boundary
                    for name, tensor in shard:
                        writer.add(name, tensor)
                    writer.flush()
                writer.finish()
            seconds = time.perf_counter() - started
            same = sum(p.stat().st_size for p in out.glob("*.safetensors"))
            assert same == written, (same, written)
            shutil.rmtree(out)
            return written / seconds

        rates = interleave({"upcycle": run_upcycle, "baseline": run_baseline}, args.rounds)
    split = {key: statistics.median(s[key] for s in splits) for key in splits[0]}
    report.side("tanuki upcycle", [r / 1e6 for r in rates["upcycle"]], "MB/s")
    report.side("baseline: its write path alone", [r / 1e6 for r in rates["baseline"]], "MB/s")
    print(f"  upcycle split (median s): read {split['read']:.2f}, noise {split['noise']:.2f}, "
          f"write+fsync {split['write']:.2f} (on the writer thread) of {split['total']:.2f}", flush=True)
    report.ratio("upcycle ÷ baseline", rates["upcycle"], rates["baseline"], "≥ 0.8×")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
