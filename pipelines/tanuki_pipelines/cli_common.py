"""Arguments every stage command shares."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import BaseModel

Recipe = TypeVar("Recipe", bound="BaseModel")


def recipe_path(value: str) -> Path:
    """A recipe file, or a shipped recipe by name: ``tanuki-8b/pretrain`` (``pipelines/recipes/``)."""
    path = Path(value)
    if path.is_file() or path.suffix or len(path.parts) != 2:
        return path
    from tanuki_pipelines.recipes import recipes_dir

    shipped = recipes_dir() / path.parent / f"{path.name}.yaml"
    return shipped if shipped.is_file() else path


def add_recipe_arguments(parser: argparse.ArgumentParser, default_output: str | None) -> None:
    parser.add_argument("--config", type=recipe_path, required=True,
                        help="recipe YAML file, or a shipped recipe as NAME/STAGE (e.g. tanuki-8b/pretrain)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field, e.g. --set train.steps=100 (repeatable)",
    )
    if default_output is not None:
        parser.add_argument(
            "--output-dir", default=default_output, help=f"where outputs go (default {default_output})"
        )


def torchrun_worker_main(command: str, description: str, recipe_model: type[Recipe], run: Callable[[Recipe, Path], Any],
                         argv: list[str] | None = None) -> int:
    """``main`` of a module each torchrun rank runs (``-m <module> --config R --output-dir D``):
    bad input exits 2 with the message, since in a pod nothing checked it before torchrun."""
    from tanuki_common.errors import EXIT_BAD_INPUT, BadInputError
    from tanuki_pipelines.preflights import load_checked_recipe

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        run(load_checked_recipe(recipe_model, args.config), args.output_dir.resolve())
    except BadInputError as exc:
        print(f"tanuki {command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def single_stage_main(args: argparse.Namespace, recipe_model: type[Recipe],
                      run: Callable[[Recipe, Path], dict[str, Any]]) -> int:
    """``main`` of a one-process stage: load the recipe and run its preflight, withdraw the previous ``outputs.json`` (a
    failed rerun must not look finished), ``run(config, output_dir)``, publish what it returns."""
    import json

    from tanuki_pipelines.outputs import publish_outputs, retract_outputs
    from tanuki_pipelines.preflights import load_checked_recipe

    config = load_checked_recipe(recipe_model, args.config, args.set)
    output_dir = Path(args.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    retract_outputs(output_dir)
    outputs = run(config, output_dir)
    publish_outputs(outputs, output_dir)
    print(json.dumps(outputs))
    return 0
