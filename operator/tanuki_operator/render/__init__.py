"""PURE render layer: validated spec + resolved inputs → Kubernetes manifests (no API calls)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tanuki_operator.api.dpo import DPOJobSpec
from tanuki_operator.api.eval import EvalJobSpec
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.api.synth import SynthJobSpec
from tanuki_operator.render.common import Owner, Settings
from tanuki_operator.render.jobs import TRAINING_MODULES, single_pod_manifests, training_manifests
from tanuki_operator.render.ray import rayjob_manifests
from tanuki_operator.render.recipes import stage_recipe
from tanuki_operator.render.serving import current_revision, modelserver_manifests

__all__ = ["Owner", "Settings", "render"]


def _judge_env(spec: DPOJobSpec | EvalJobSpec) -> list[dict[str, Any]]:
    if spec.judgeApiKey is None:
        return []
    return [{"name": spec.recipe.pairs.judge.api_key_env if isinstance(spec, DPOJobSpec) else spec.recipe.judge.api_key_env,
             "valueFrom": {"secretKeyRef": {"name": spec.judgeApiKey.name, "key": spec.judgeApiKey.key}}}]


def render(owner: Owner, spec: BaseModel, inputs: dict[str, str], settings: Settings) -> list[dict[str, Any]]:
    """All children of one resource, in creation order."""
    if isinstance(spec, ModelServerSpec):  # steady state: one revision; rollouts go through handlers.serving
        revision = current_revision(spec, inputs["model"], settings)
        return modelserver_manifests(owner, spec, settings, [(revision, spec.total_replicas())])
    recipe = stage_recipe(spec, inputs)
    if owner.kind in TRAINING_MODULES:
        manifests = training_manifests(owner, spec, recipe, settings)
        if isinstance(spec, DPOJobSpec):
            manifests[-1]["spec"]["template"]["spec"]["containers"][0]["env"] += _judge_env(spec)
        return manifests
    if isinstance(spec, SynthJobSpec) and spec.recipe.ray.mode == "cluster":
        return rayjob_manifests(owner, spec, recipe, settings)
    env = _judge_env(spec) if isinstance(spec, EvalJobSpec) else []
    return single_pod_manifests(owner, spec, recipe, settings, env)
