"""Each stage's preflight, found by the recipe model it checks: what the programs run first thing
and what ``tanuki check`` runs on a chain's resources (see ``tanuki_pipelines.preflight``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from tanuki_pipelines.preflight import Hardware, Preflight

Recipe = TypeVar("Recipe", bound=BaseModel)

PREFLIGHTS: dict[str, str] = {
    f"tanuki_pipelines.{stage}.config.{model}": f"tanuki_pipelines.{stage}.preflight"
    for stage, model in [("curate", "CurateConfig"), ("pretrain", "PretrainConfig"), ("tokenize", "TokenizeConfig"),
                         ("synth", "SynthConfig"),
                         ("upcycle", "UpcycleConfig"), ("sft", "SFTConfig"), ("dpo", "DPOConfig"),
                         ("quantize", "QuantizeConfig"), ("eval", "EvalConfig")]
}
"""Recipe model (module.class) → the module whose ``preflight(config, check)`` checks it."""


def preflight_of(model: type[BaseModel]) -> Callable[[Any, Preflight], None] | None:
    module = PREFLIGHTS.get(f"{model.__module__}.{model.__qualname__}")
    return importlib.import_module(module).preflight if module else None


def findings(config: BaseModel, hardware: Hardware, paths_here: bool = True) -> Preflight:
    """What the stage's preflight finds of ``config`` on ``hardware`` (no preflight: nothing)."""
    check = Preflight(hardware=hardware, paths_here=paths_here)
    if (preflight := preflight_of(type(config))) is not None:
        preflight(config, check)
    return check


def run_preflight(config: BaseModel, hardware: Hardware | None = None) -> None:
    """The program's first step: every problem of its recipe and inputs, as one ``BadInputError``."""
    findings(config, hardware if hardware is not None else Hardware.here()).raise_problems()


def load_checked_recipe(model: type[Recipe], path: Path, overrides: list[str] | None = None) -> Recipe:
    """``load_recipe`` then the stage's preflight: what a stage's program starts with."""
    from tanuki_pipelines.config import load_recipe

    config = load_recipe(model, path, overrides)
    run_preflight(config)
    return config
