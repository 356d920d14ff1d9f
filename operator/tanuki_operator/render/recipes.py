"""The stage recipe each kind mounts, with upstream inputs bound to their resolved paths (pure)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tanuki_operator.api.dpo import DPOJobSpec
from tanuki_operator.api.eval import EvalJobSpec
from tanuki_operator.api.pretrain import PretrainJobSpec
from tanuki_operator.api.sft import SFTJobSpec
from tanuki_operator.api.synth import SynthJobSpec
from tanuki_operator.api.upcycle import UpcycleJobSpec


def _dump(recipe: BaseModel) -> dict[str, Any]:
    return recipe.model_dump(mode="json", by_alias=True, exclude_none=True)


def stage_recipe(spec: BaseModel, inputs: dict[str, str]) -> dict[str, Any]:
    """The recipe YAML the stage reads. ``inputs``: input role → absolute path (or URL)."""
    if isinstance(spec, PretrainJobSpec):
        recipe = _dump(spec.recipe)
        for source in recipe["data"]["sources"]:
            if f"source:{source['name']}" in inputs:
                source["path"] = inputs[f"source:{source['name']}"]
        if "init_from" in inputs:
            recipe["init_from"] = inputs["init_from"]
        return recipe
    if isinstance(spec, UpcycleJobSpec):
        return {**_dump(spec.recipe), "source": inputs["model"]}
    if isinstance(spec, SynthJobSpec):
        recipe = _dump(spec.recipe)
        recipe["generator"]["path"] = inputs["model"]
        return recipe
    if isinstance(spec, SFTJobSpec):
        return {**_dump(spec.recipe), "model": inputs["model"], "dataset": inputs["dataset"]}
    if isinstance(spec, DPOJobSpec):
        return {**_dump(spec.recipe), "model": inputs["model"], "prompts": inputs["prompts"]}
    if isinstance(spec, EvalJobSpec):
        return {**_dump(spec.recipe), "target_url": inputs["target_url"],
                "target_model": inputs.get("target_model")}
    raise TypeError(f"no recipe for {type(spec).__name__}")
