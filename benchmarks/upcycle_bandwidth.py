"""Upcycling throughput against the physical limit of the same work on the same disk, in one run.

The upcycle reads the dense shards and writes the MoE's safetensors shards, each fsynced, into a
directory it then publishes (fsync, rename). Its floor is the time to write that many bytes as
safetensors shards of the same sizes to the same filesystem, each fsynced. So the baseline
does exactly that: one shard per output shard of the upcycle, same byte count, same tensor
count, built in memory before the clock starts and written with the same ``save_file`` +
``fsync``. Neither side reads from the page cache: before each side the source shards are
dropped from it (``posix_fadvise(DONTNEED)`` after an fsync, which needs no privileges).

Both sides run in this process on the same threads. The upcycle's time is also split into
reading, generating the experts' noise (seeded Gaussian draws), and writing; the ratio
``upcycle ÷ baseline`` is bytes/s over bytes/s. Goal ≥ 0.8×.

    .venv/bin/python benchmarks/upcycle_bandwidth.py [--layers 8] [--experts 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def drop_from_page_cache(paths: list[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def baseline_write(shapes: list[list[tuple[str, tuple[int, ...]]]], out: Path) -> float:
    """Write safetensors shards holding tensors of the given names and shapes, each fsynced;
    returns the seconds it took (the tensors exist before the clock starts)."""
    import torch
    from safetensors.torch import save_file

    from tanuki_pipelines.publish import fsync_dir, fsync_file

    shards = [{name: torch.full(shape, 0.5, dtype=torch.float32) for name, shape in shard} for shard in shapes]
    out.mkdir()
    started = time.perf_counter()
    for number, tensors in enumerate(shards, start=1):
        path = out / f"model-{number:05d}.safetensors"
        save_file(tensors, str(path), metadata={"format": "pt"})
        fsync_file(path)
    fsync_dir(out)
    return time.perf_counter() - started


def output_shapes(checkpoint: Path) -> list[list[tuple[str, tuple[int, ...]]]]:
    from safetensors import safe_open

    shapes = []
    for path in sorted(checkpoint.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            shapes.append([(key, tuple(handle.get_slice(key).get_shape())) for key in handle.keys()])
    return shapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each side (median reported)")
    args = parser.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tanuki_pipelines.upcycle.config import UpcycleConfig
    from tanuki_pipelines.upcycle.convert import upcycle

    upcycle_rates, baseline_rates, splits = [], [], []
    with tempfile.TemporaryDirectory(prefix="tanuki-upcycle-bench-", dir=os.environ.get("TMPDIR")) as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=8192, hidden_size=512, intermediate_size=2048,
                             num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4)
        LlamaForCausalLM(config).save_pretrained(root / "dense", max_shard_size="50MB")
        sources = sorted((root / "dense").glob("*.safetensors"))
        recipe = UpcycleConfig(source=root / "dense", num_experts=args.experts, top_k=2, noise_std=0.001)
        for index in range(args.rounds):
            drop_from_page_cache(sources)
            started = time.perf_counter()
            outputs = upcycle(recipe, root / f"moe-{index}", progress=False)
            seconds = time.perf_counter() - started
            written = sum(p.stat().st_size for p in (root / f"moe-{index}").glob("*.safetensors"))
            upcycle_rates.append(written / seconds)
            splits.append({**outputs["seconds"], "total": seconds})

            drop_from_page_cache(sources)
            baseline_seconds = baseline_write(output_shapes(root / f"moe-{index}"), root / f"baseline-{index}")
            baseline_bytes = sum(p.stat().st_size for p in (root / f"baseline-{index}").glob("*.safetensors"))
            assert abs(baseline_bytes - written) < 4096 * len(sources), (baseline_bytes, written)
            baseline_rates.append(baseline_bytes / baseline_seconds)
            shutil.rmtree(root / f"moe-{index}")
            shutil.rmtree(root / f"baseline-{index}")

    upcycle_rate, baseline_rate = statistics.median(upcycle_rates), statistics.median(baseline_rates)
    split = {key: statistics.median(s[key] for s in splits) for key in splits[0]}
    print(f"dense {args.layers} layers → {args.experts} experts: {written / 1e6:.0f} MB of shards, "
          f"{args.rounds} rounds (median)")
    print(f"tanuki upcycle:                      {upcycle_rate / 1e6:8.1f} MB/s  "
          f"(read {split['read']:.2f} s, noise {split['noise']:.2f} s, write+fsync {split['write']:.2f} s "
          f"of {split['total']:.2f} s)")
    print(f"baseline: same shards, write+fsync:  {baseline_rate / 1e6:8.1f} MB/s")
    print(f"ratio upcycle / baseline: {upcycle_rate / baseline_rate:.2f}x  (goal ≥ 0.8x)")
    print(f"per round: upcycle {[round(r / 1e6) for r in upcycle_rates]} MB/s, "
          f"baseline {[round(r / 1e6) for r in baseline_rates]} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
