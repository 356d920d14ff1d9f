"""``tanuki quantize --config recipe.yaml --output-dir DIR``: W8A8 / W4A16 / FP8 (llmcompressor, served
by vLLM) or GGUF (llama.cpp), gated on measured agreement with the source model."""

from __future__ import annotations

import argparse

from tanuki_pipelines.cli_common import add_recipe_arguments, single_stage_main


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/quantize")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.quantize.config import QuantizeConfig
    from tanuki_pipelines.quantize.run import quantize

    return single_stage_main(args, QuantizeConfig, quantize)
