"""``tanuki upcycle --config recipe.yaml --output-dir DIR``: dense → Mixture-of-Experts checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tanuki_pipelines.cli_common import add_recipe_arguments


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/upcycle")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.outputs import publish_outputs, retract_outputs
    from tanuki_pipelines.upcycle.config import UpcycleConfig
    from tanuki_pipelines.upcycle.convert import upcycle

    config = load_recipe(UpcycleConfig, args.config, args.set)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    retract_outputs(output_dir)
    checkpoint = output_dir / "checkpoint"
    outputs = upcycle(config, checkpoint)
    publish_outputs(outputs, output_dir)
    print(json.dumps(outputs))
    return 0
