"""Arguments every stage command shares."""

from __future__ import annotations

import argparse
from pathlib import Path


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
