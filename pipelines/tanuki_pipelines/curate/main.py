"""``tanuki curate --config R --output-dir D [--workers N] [--ray-address A]``: clean and deduplicate
corpora at corpus scale (see ``tanuki_pipelines.curate.run``); resumable by file and stage."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tanuki_pipelines.cli_common import add_recipe_arguments, single_stage_main


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/curate")
    parser.add_argument("--cpus", type=int, default=len(os.sched_getaffinity(0)),
                        help="local worker processes when the recipe sets no workers (default: the cores)")
    parser.add_argument("--ray-address", default=None,
                        help="run the stages' tasks on a Ray cluster instead (`auto`, an address, or `local`)")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.curate.config import CurateConfig
    from tanuki_pipelines.curate.run import curate

    def run(config: CurateConfig, output_dir: Path) -> dict[str, Any]:
        return curate(config, output_dir, config.workers or max(1, args.cpus), args.ray_address)

    return single_stage_main(args, CurateConfig, run)
