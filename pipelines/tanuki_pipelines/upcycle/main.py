"""``tanuki upcycle --config recipe.yaml --output-dir DIR``: dense → Mixture-of-Experts checkpoint."""

from __future__ import annotations

import argparse

from tanuki_pipelines.cli_common import add_recipe_arguments, single_stage_main


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/upcycle")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.upcycle.config import UpcycleConfig
    from tanuki_pipelines.upcycle.convert import upcycle

    return single_stage_main(args, UpcycleConfig, lambda config, output_dir: upcycle(config, output_dir / "checkpoint"))
