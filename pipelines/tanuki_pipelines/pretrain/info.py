"""``tanuki model-info --config recipe.yaml``: parameter counts without allocating weights."""

from __future__ import annotations

import argparse
import json

from tanuki_pipelines.cli_common import add_recipe_arguments


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.pretrain.config import PretrainConfig
    from tanuki_pipelines.pretrain.model import count_parameters, count_parameters_on_meta, flops_per_token

    config = load_recipe(PretrainConfig, args.config, args.set)
    analytic = count_parameters(config.model)
    total = count_parameters_on_meta(config.model)  # the real HF module, on the meta device
    if total != analytic.total:
        raise RuntimeError(f"parameter count mismatch: HF module {total}, closed form {analytic.total}")
    info = {
        "total_parameters": total,
        "active_parameters": analytic.active,
        "embedding_parameters": analytic.embedding,
        "training_flops_per_token": flops_per_token(config.model, config.train.seq_len),
    }
    if args.json:
        print(json.dumps(info))
    else:
        print(f"total parameters:  {total:,} ({total / 1e9:.2f}B)")
        print(f"active parameters: {info['active_parameters']:,} ({info['active_parameters'] / 1e9:.2f}B)")
        print(f"training FLOPs/token: {info['training_flops_per_token']:.3e}")
    return 0
