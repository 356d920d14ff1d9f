"""``tanuki tokenizer --config recipe.yaml --output-dir DIR``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tanuki_pipelines.cli_common import add_recipe_arguments


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/tokenizer")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.outputs import publish_outputs
    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import build_tokenizer

    config = load_recipe(TokenizerConfig, args.config, args.set)
    outputs = build_tokenizer(config, Path(args.output_dir))
    publish_outputs(outputs, Path(args.output_dir))
    print(json.dumps(outputs, ensure_ascii=False))
    return 0
