"""``tanuki sft --config R --output-dir D [--nproc-per-node N]``: TRL SFT on chat JSONL.

The local launcher, as ``tanuki pretrain``'s: checks the recipe and the conversations here (bad
input fails at once, naming the lines it left out), writes the resolved recipe, then starts
``torchrun`` with one training process per device. A rerun resumes from the newest checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tanuki_pipelines.cli_common import add_recipe_arguments

MODULE = "tanuki_pipelines.sft.train"


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/sft")
    parser.add_argument("--nproc-per-node", type=int, default=1,
                        help="training processes on this machine (CPU: gloo ranks; GPU: one per device)")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_common.errors import BadInputError
    from tanuki_pipelines.checkpoints import require_checkpoint
    from tanuki_pipelines.outputs import OUTPUTS_FILE, retract_outputs
    from tanuki_pipelines.preflights import load_checked_recipe
    from tanuki_pipelines.pretrain.main import run_training
    from tanuki_pipelines.sft.config import SFTConfig
    from tanuki_pipelines.sft.data import read_conversations
    from tanuki_pipelines.sft.train import chat_tokenizer

    if args.nproc_per_node < 1:
        raise BadInputError(f"--nproc-per-node must be at least 1, got {args.nproc_per_node}")
    config = load_checked_recipe(SFTConfig, args.config, args.set)
    model = require_checkpoint("model", config.model)
    if config.dataset is None:
        raise BadInputError("dataset: not set")
    chat_tokenizer(model)  # fails here, at once, when it lacks a chat template or eos
    conversations, _ = read_conversations(config.dataset)  # rank 0 reports what it leaves out
    print(f"[tanuki sft] {len(conversations)} conversations from {config.dataset}", flush=True)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    retract_outputs(output_dir)
    code = run_training(config, output_dir, args.nproc_per_node, MODULE)
    if code != 0:
        return code
    print(json.dumps(json.loads((output_dir / OUTPUTS_FILE).read_text()), ensure_ascii=False))
    return 0
