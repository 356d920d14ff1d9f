"""``tanuki tokenize --config R --output-dir D [--cpus N] [--ray-address A]``: corpus sources → a token
store (Megatron-LM indexed dataset, one ``.bin``/``.idx`` per input file) that pretraining reads.

Shards are tokenized by a process pool within ``--cpus`` on this machine, or by Ray Data tasks on a
Ray cluster (``--ray-address auto`` in a KubeRay RayJob whose workers mount the output volume;
``local`` for an in-process Ray). A rerun finishes what an interrupted one left.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tanuki_pipelines.cli_common import add_recipe_arguments, single_stage_main


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/tokens")
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)),
                        help="CPU cores to use on this machine (default: all available)")
    parser.add_argument("--ray-address", default=None,
                        help="tokenize on a Ray cluster instead (`auto`, an address, or `local`)")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.tokenize.build import build_store
    from tanuki_pipelines.tokenize.config import TokenizeConfig
    from tanuki_pipelines.tokenize.store import STATS_FILE, TOKENIZER_DIR

    def run(config: TokenizeConfig, output_dir: Path) -> dict[str, Any]:
        index = build_store(config, output_dir, max(1, args.cpus), args.ray_address)
        return {"tokens": str(output_dir), "tokenizer": str(output_dir / TOKENIZER_DIR),
                "stats": str(output_dir / STATS_FILE), "dtype": index["dtype"],
                "token_count": sum(source["tokens"] for source in index["sources"].values()),
                "sources": {name: source["tokens"] for name, source in index["sources"].items()}}

    return single_stage_main(args, TokenizeConfig, run)
