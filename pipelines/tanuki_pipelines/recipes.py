"""Finding the shipped recipes (``pipelines/recipes/<name>/<stage>.yaml``) and example custom
resources (``examples/*.yaml``).

Both ship inside the package (``tanuki_pipelines/shipped/``, links to those directories in the
source tree, files in a wheel), so an installed ``tanuki`` finds them without a source checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from tanuki_common.errors import BadInputError

RECIPES_ENV = "TANUKI_RECIPES_DIR"
EXAMPLES_ENV = "TANUKI_EXAMPLES_DIR"
SHIPPED = Path(__file__).resolve().parent / "shipped"


def recipes_dir() -> Path:
    """``$TANUKI_RECIPES_DIR``, or the recipes shipped with the package."""
    configured = os.environ.get(RECIPES_ENV)
    return Path(configured) if configured else (SHIPPED / "recipes").resolve()  # the source tree's, in a checkout


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
    """``$TANUKI_EXAMPLES_DIR``, or the examples shipped with the package."""
    configured = os.environ.get(EXAMPLES_ENV)
    return Path(configured) if configured else (SHIPPED / "examples").resolve()


def resource_file(name: str | Path) -> Path:
    """A YAML file of custom resources: a path, or the name of a shipped example (``debug-chain``)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = examples_dir() / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.stem for p in examples_dir().glob("*.yaml")))
    raise BadInputError(f"-f: no such file: {name} (shipped examples: {known})")
