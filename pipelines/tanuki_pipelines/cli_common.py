"""Arguments every stage command shares."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_recipe_arguments(parser: argparse.ArgumentParser, default_output: str | None) -> None:
    parser.add_argument("--config", type=Path, required=True, help="recipe YAML file")
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
