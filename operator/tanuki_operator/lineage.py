"""Upstream references → resolved input values, or why the resource must wait or fail (pure).

A spec names its inputs (``StageSpec.inputs``) as a path, a literal, or ``from: {kind, name}``. A
referenced upstream must be in its kind's ready phase (``Succeeded``; a ModelServer ``Running``);
then its ``status.outputs`` provides the value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tanuki_operator.api.common import ArtifactSource, Input, ObjectRef, Phase, StageSpec, Storage
from tanuki_operator.render.common import absolute
from tanuki_operator.stages import STAGES

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


def upstream_refs(spec: StageSpec) -> list[ObjectRef]:
    """The resources this one reads from (for waking it when they change)."""
    refs = []
    for item in spec.inputs().values():
        ref = item.source if isinstance(item.source, ObjectRef) else \
            item.source.from_ if isinstance(item.source, ArtifactSource) else None
        if ref is not None and ref not in refs:
            refs.append(ref)
    return refs


def referenced(spec: Any) -> list[str]:
    """``Kind/name`` of every ``from: {kind, name}`` in a raw spec (pure; for lineage pictures,
    where the spec need not be valid)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("from")
            if isinstance(ref, dict) and isinstance(ref.get("kind"), str) and isinstance(ref.get("name"), str):
                label = f"{ref['kind']}/{ref['name']}"
                if label not in found:
                    found.append(label)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    return found


def settling(kind: str, status: dict[str, Any]) -> str | None:
    """Why a resource in its kind's ready phase is not ready for consumers yet (None: it is)."""
    settle = STAGES[kind].settling if kind in STAGES else None
    return settle(status) if settle is not None else None


def initial_stand_in(resolution: Resolution, serving: str | None) -> str | None:
    """The checkpoint of a ModelServer's ``initialModel`` when it should serve in ``model``'s stead:
    the model's upstream has not produced yet (waiting, not failed) and nothing but the initial
    model has served so far (once the model's checkpoint served, a rerun of its job does not bring
    the initial one back)."""
    initial = resolution.inputs.get("initialModel")
    if initial is None or resolution.errors or not resolution.waiting_for or serving not in (None, initial):
        return None
    return initial


def resolve(spec: StageSpec, storage: Storage | None, lookup: StatusLookup) -> Resolution:
    resolution = Resolution()
    for role, item in spec.inputs().items():
        source = item.source
        if isinstance(source, str):
            resolution.inputs[role] = source
        elif isinstance(source, ObjectRef):
            _resolve_reference(role, item, source, lookup, resolution)
        elif source.from_ is not None:
            _resolve_reference(role, item, source.from_, lookup, resolution)
        else:
            assert storage is not None and source.path is not None
            resolution.inputs[role] = absolute(storage, source.path)
    return resolution


def _resolve_reference(role: str, item: Input, ref: ObjectRef, lookup: StatusLookup, resolution: Resolution) -> None:
    label = f"{ref.kind}/{ref.name}"
    status = lookup(ref.kind, ref.name)
    if status is None:
        if item.required:
            resolution.errors.append(f"{label} does not exist")
        return
    phase = status.get("phase")
    if phase in (Phase.FAILED, Phase.VALIDATION_FAILED):
        if item.required:
            resolution.errors.append(f"{label} is {phase}")
        return
    if phase != STAGES[ref.kind].ready_phase:
        if item.required and f"{label} ({phase or Phase.PENDING})" not in resolution.waiting_for:
            resolution.waiting_for.append(f"{label} ({phase or Phase.PENDING})")
        return
    if (why := settling(ref.kind, status)) is not None:
        if item.required and f"{label} ({phase}: {why})" not in resolution.waiting_for:
            resolution.waiting_for.append(f"{label} ({phase}: {why})")
        return
    value = (status.get("outputs") or {}).get(item.output)
    if not value:
        if item.required:
            resolution.errors.append(f"{label} succeeded without outputs.{item.output}")
        return
    resolution.inputs[role] = str(value)
