"""PURE render layer: validated spec + resolved inputs → Kubernetes manifests (no API calls)."""

from __future__ import annotations

from typing import Any

from tanuki_operator.api.arena import ArenaSpec
from tanuki_operator.api.common import JobSpec, StageSpec
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.render.common import Owner, Settings
from tanuki_operator.render.jobs import single_pod_manifests, training_manifests
from tanuki_operator.render.ray import rayjob_manifests
from tanuki_operator.render.serving import modelserver_manifests
from tanuki_operator.render.web import arena_manifests
from tanuki_operator.stages import Stage, Workload

__all__ = ["Owner", "Settings", "StageNotAvailable", "render"]


class StageNotAvailable(Exception):
    """The kind's program is not part of this version: rendering it would start a pod that cannot run."""


def render(stage: Stage, owner: Owner, spec: StageSpec, inputs: dict[str, str], settings: Settings) -> list[dict[str, Any]]:
    """All children of one resource, in creation order. A ModelServer renders its steady state (one
    revision with every replica); rollouts go through ``handlers.serving``."""
    workload = stage.workload_of(spec)
    if workload is Workload.SERVER:
        assert isinstance(spec, ModelServerSpec), f"{stage.kind}: a server stage has a ModelServer spec"
        return modelserver_manifests(owner, spec, settings, inputs["model"])
    program = stage.program
    if program is None:
        raise StageNotAvailable(stage.kind)
    recipe = spec.stage_recipe(inputs)
    if workload is Workload.WEB:
        assert isinstance(spec, ArenaSpec), f"{stage.kind}: a web stage has an Arena spec"
        return arena_manifests(owner, spec, recipe, settings, program)
    assert isinstance(spec, JobSpec), f"{stage.kind}: a batch stage has a job spec"
    match workload:
        case Workload.TORCHRUN:
            assert program.module is not None, f"{stage.kind}: a torchrun stage names its module"
            return training_manifests(owner, spec, recipe, settings, program.module)
        case Workload.POD:
            assert program.command is not None, f"{stage.kind}: a pod stage names its tanuki command"
            return single_pod_manifests(owner, spec, recipe, settings, program)
        case Workload.RAY:
            assert program.command is not None, f"{stage.kind}: a Ray stage names its tanuki command"
            cluster = spec.ray_cluster()
            assert cluster is not None, f"{stage.kind}: a Ray workload comes from a spec with a Ray cluster"
            return rayjob_manifests(owner, spec, cluster, recipe, settings, program.command)
    raise AssertionError(workload)
