"""``tanuki pretrain --config recipe.yaml --output-dir DIR [--nproc-per-node N]``.

The local launcher: validates the recipe, prepares the tokenizer and packed data in this process
(so bad input fails at once with one clear message), writes the resolved recipe, then starts
``torchrun`` with one training process per device. On a cluster, pods run torchrun directly.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tanuki_pipelines.cli_common import add_recipe_arguments

RESOLVED_RECIPE_FILE = "recipe.yaml"


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/pretrain")
    parser.add_argument("--nproc-per-node", type=int, default=1,
                        help="training processes on this machine (CPU: gloo ranks; GPU: one per device)")
    return parser


def torchrun_command(recipe: Path, output_dir: Path, nproc_per_node: int, master_port: int,
                     module: str = "tanuki_pipelines.pretrain.train") -> list[str]:
    """Single-node torchrun invocation of a training program (pure)."""
    return [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1",
        "--nproc-per-node", str(nproc_per_node),
        "--master-addr", "127.0.0.1",
        "--master-port", str(master_port),
        "-m", module,
        "--config", str(recipe),
        "--output-dir", str(output_dir),
    ]


def training_environment(base: dict[str, str]) -> dict[str, str]:
    """Environment for the ranks: quiet per-step deprecation warnings, bounded CPU threads."""
    env = dict(base)
    env.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::UserWarning")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.outputs import OUTPUTS_FILE, retract_outputs
    from tanuki_pipelines.preflights import load_checked_recipe
    from tanuki_pipelines.pretrain.config import PretrainConfig
    from tanuki_pipelines.pretrain.prepare import prepare

    if args.nproc_per_node < 1:
        from tanuki_common.errors import BadInputError

        raise BadInputError(f"--nproc-per-node must be at least 1, got {args.nproc_per_node}")
    config = load_checked_recipe(PretrainConfig, args.config, args.set)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    retract_outputs(output_dir)
    prepare(config, output_dir)
    code = run_training(config, output_dir, args.nproc_per_node, "tanuki_pipelines.pretrain.train")
    if code != 0:
        return code
    print(json.dumps(json.loads((output_dir / OUTPUTS_FILE).read_text()), ensure_ascii=False))
    return 0


def run_training(config: Any, output_dir: Path, nproc_per_node: int, module: str) -> int:
    """Write the resolved recipe to ``output_dir/recipe.yaml`` and run ``module`` under torchrun on
    this machine; the ranks' exit code."""
    from tanuki_pipelines.config import dump_recipe

    recipe = output_dir / RESOLVED_RECIPE_FILE
    dump_recipe(config, recipe)
    port = free_port()
    completed = subprocess.run(torchrun_command(recipe, output_dir, nproc_per_node, port, module),
                               env=training_environment(dict(os.environ)))
    _remove_shm_buffers(port)
    return completed.returncode


def _remove_shm_buffers(port: int) -> None:
    """Buffers of ranks that were killed before they could remove their own."""
    for path in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_{os.getuid()}_*_{port}_*"):
        path.unlink(missing_ok=True)
