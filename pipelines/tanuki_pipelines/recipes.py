"""Finding the recipes shipped in ``pipelines/recipes/<name>/<stage>.yaml``."""

from __future__ import annotations

import os
from pathlib import Path

from tanuki_pipelines.errors import BadInputError

RECIPES_ENV = "TANUKI_RECIPES_DIR"


def recipes_dir() -> Path:
    """``$TANUKI_RECIPES_DIR`` (set in images) or the source tree's ``pipelines/recipes``."""
    configured = os.environ.get(RECIPES_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "recipes"


def shipped_recipe(name: str, stage: str) -> Path:
    path = recipes_dir() / name / f"{stage}.yaml"
    if not path.is_file():
        raise BadInputError(f"no shipped recipe {name}/{stage}.yaml in {recipes_dir()} (set ${RECIPES_ENV})")
    return path


def all_shipped_recipes() -> list[tuple[str, str, Path]]:
    """(recipe name, stage, path) for every shipped recipe file."""
    found = []
    for path in sorted(recipes_dir().glob("*/*.yaml")):
        found.append((path.parent.name, path.stem, path))
    return found


def examples_dir() -> Path:
    """``$TANUKI_EXAMPLES_DIR`` (set in images) or the source tree's ``examples``."""
    configured = os.environ.get("TANUKI_EXAMPLES_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "examples"
