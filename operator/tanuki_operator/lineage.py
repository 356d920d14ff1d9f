"""Upstream references → resolved input paths, or why the resource must wait or fail (pure).

A spec names its inputs as a path or ``from: {kind, name}``. A referenced upstream must be
``Succeeded`` (a ModelServer: ``Running``); then its ``status.outputs`` provides the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from tanuki_operator.api.common import ArtifactSource, ObjectRef, Storage
from tanuki_operator.api.dpo import DPOJobSpec
from tanuki_operator.api.eval import EvalJobSpec
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.api.pretrain import PretrainJobSpec
from tanuki_operator.api.sft import SFTJobSpec
from tanuki_operator.api.synth import SynthJobSpec
from tanuki_operator.api.upcycle import UpcycleJobSpec
from tanuki_operator.render.common import absolute

# which status.outputs key an input role reads from its upstream
OUTPUT_KEY = {"model": "checkpoint", "init_from": "checkpoint", "dataset": "dataset", "prompts": "dataset", "target_url": "url"}
READY_PHASE = {"ModelServer": "Running"}

StatusLookup = Callable[[str, str], dict[str, Any] | None]
"""(kind, name) → the upstream's ``status`` (``{}`` when it has none yet), or None if it does not exist."""


@dataclass
class Resolution:
    inputs: dict[str, str] = field(default_factory=dict)
    waiting_for: list[str] = field(default_factory=list)
    """Upstreams that exist but have not finished yet."""
    errors: list[str] = field(default_factory=list)
    """Upstreams that are missing, failed, or finished without the needed output."""

    @property
    def ready(self) -> bool:
        return not self.waiting_for and not self.errors


def input_sources(spec: BaseModel) -> dict[str, ArtifactSource | ObjectRef | str]:
    """Input role → where it comes from, for every kind."""
    if isinstance(spec, PretrainJobSpec):
        sources: dict[str, ArtifactSource | ObjectRef | str] = {
            f"source:{binding.source}": binding.from_ for binding in spec.sourcesFrom}
        if spec.initFrom is not None:
            sources["init_from"] = spec.initFrom
        return sources
    if isinstance(spec, (UpcycleJobSpec, SynthJobSpec, ModelServerSpec)):
        return {"model": spec.model}
    if isinstance(spec, SFTJobSpec):
        return {"model": spec.model, "dataset": spec.dataset}
    if isinstance(spec, DPOJobSpec):
        return {"model": spec.model, "prompts": spec.prompts}
    if isinstance(spec, EvalJobSpec):
        return {"target_url": spec.target.from_ if spec.target.from_ else spec.target.url}
    return {}


def resolve(spec: BaseModel, storage: Storage, lookup: StatusLookup) -> Resolution:
    resolution = Resolution()
    for role, source in input_sources(spec).items():
        if isinstance(source, str):
            resolution.inputs[role] = source
            continue
        reference = source if isinstance(source, ObjectRef) else source.from_
        if reference is None:
            resolution.inputs[role] = absolute(storage, source.path)
            continue
        _resolve_reference(role, reference, lookup, resolution)
    return resolution


def _resolve_reference(role: str, ref: ObjectRef, lookup: StatusLookup, resolution: Resolution) -> None:
    label = f"{ref.kind}/{ref.name}"
    status = lookup(ref.kind, ref.name)
    if status is None:
        resolution.errors.append(f"{label} does not exist")
        return
    phase = status.get("phase")
    if phase in ("Failed", "ValidationFailed"):
        resolution.errors.append(f"{label} is {phase}")
        return
    if phase != READY_PHASE.get(ref.kind, "Succeeded"):
        resolution.waiting_for.append(f"{label} ({phase or 'Pending'})")
        return
    key = "dataset" if role.startswith("source:") else OUTPUT_KEY[role]
    value = (status.get("outputs") or {}).get(key)
    if not value:
        resolution.errors.append(f"{label} succeeded without outputs.{key}")
        return
    resolution.inputs[role] = str(value)
    if role == "target_url":
        model = (status.get("outputs") or {}).get("model")
        if model:
            resolution.inputs["target_model"] = str(model)
