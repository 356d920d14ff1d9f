"""Upcycling throughput against plain file copies of the same bytes, measured in one run.

Builds a dense Llama (default ~170 MB fp32 in 50 MB shards), upcycles it to 8 experts, and
copies the same number of output bytes with shutil (source shards copied repeatedly). Prints
bytes/s of both and the ratio; the goal is ≥ 0.5×.

    .venv/bin/python benchmarks/upcycle_bandwidth.py [--layers 8] [--experts 8]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--experts", type=int, default=8)
    args = parser.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tanuki_pipelines.upcycle.config import UpcycleConfig
    from tanuki_pipelines.upcycle.convert import upcycle

    with tempfile.TemporaryDirectory(prefix="tanuki-upcycle-bench-") as tmp:
        root = Path(tmp)
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=8192, hidden_size=512, intermediate_size=2048,
                             num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=4)
        LlamaForCausalLM(config).save_pretrained(root / "dense", max_shard_size="50MB")
        started = time.perf_counter()
        upcycle(UpcycleConfig(source=root / "dense", num_experts=args.experts, top_k=2, noise_std=0.001),
                root / "moe", progress=False)
        convert_seconds = time.perf_counter() - started
        written = sum(p.stat().st_size for p in (root / "moe").glob("*.safetensors"))

        sources = sorted((root / "dense").glob("*.safetensors"))
        copies = root / "copies"
        copies.mkdir()
        started, copied, index = time.perf_counter(), 0, 0
        while copied < written:
            source = sources[index % len(sources)]
            shutil.copyfile(source, copies / f"{index}.bin")
            copied += source.stat().st_size
            index += 1
        copy_seconds = time.perf_counter() - started

    convert_rate, copy_rate = written / convert_seconds, copied / copy_seconds
    print(f"dense {args.layers} layers → {args.experts} experts: wrote {written / 1e6:.0f} MB")
    print(f"tanuki upcycle: {convert_rate / 1e6:8.1f} MB/s")
    print(f"plain copies:   {copy_rate / 1e6:8.1f} MB/s")
    print(f"ratio upcycle / copy: {convert_rate / copy_rate:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
