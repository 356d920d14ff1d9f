"""One reconciliation: validate → resolve lineage → render → create what is missing → status.

No kopf here: it takes a ``Kube`` and returns the status to write and the event to emit, so it
runs the same under kopf, in tests, and in a crash-and-restart loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tanuki_operator.api import API_VERSION, KINDS
from tanuki_operator.api.common import JobSpec
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.api.synth import SynthJobSpec
from tanuki_operator.k8s import ApiError, Kube, register_kinds
from tanuki_operator.lineage import resolve
from tanuki_operator.handlers.serving import reconcile_modelserver
from tanuki_operator.phases import Observed, observe_job, observe_rayjob
from tanuki_operator.render import Owner, Settings, render
from tanuki_operator.validation import summarize, validate_spec
from tanuki_pipelines.outputs import parse_progress

register_kinds({(API_VERSION, info.kind): info.plural for info in KINDS.values()})
TERMINAL = ("Succeeded", "Failed", "ValidationFailed")


@dataclass
class Outcome:
    status: dict[str, Any]
    """Fields of ``.status`` to patch (empty: nothing changed)."""
    event: tuple[str, str, str] | None = None
    """(type Normal|Warning, reason, message) to emit, on a phase change."""


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def reconcile(kube: Kube, settings: Settings, kind: str, body: dict[str, Any]) -> Outcome:
    meta, spec, status = body["metadata"], body.get("spec"), body.get("status") or {}
    generation = meta.get("generation")
    model, errors = validate_spec(kind, spec)
    if errors:
        message = summarize(errors)
        return _transition(status, generation, Observed("ValidationFailed", "InvalidSpec", message),
                           valid=False)
    if status.get("phase") in TERMINAL and status.get("observedGeneration") == generation:
        return Outcome({})
    namespace = meta["namespace"]
    owner = Owner(kind=kind, name=meta["name"], namespace=namespace, uid=meta["uid"])

    def lookup(upstream_kind: str, name: str) -> dict[str, Any] | None:
        found = kube.get(API_VERSION, upstream_kind, namespace, name)
        return None if found is None else (found.get("status") or {})

    resolution = resolve(model, model.storage, lookup)
    if resolution.errors:
        return _transition(status, generation, Observed("Waiting", "UpstreamUnavailable",
                                                        "; ".join(resolution.errors)))
    if resolution.waiting_for:
        return _transition(status, generation, Observed("Waiting", "UpstreamPending",
                                                        "waiting for " + ", ".join(resolution.waiting_for)))
    if isinstance(model, ModelServerSpec):
        return _transition(status, generation, reconcile_modelserver(
            kube, settings, owner, model, resolution.inputs["model"], status, _create_or_adopt))
    manifests = render(owner, model, resolution.inputs, settings)
    for manifest in manifests:
        _create_or_adopt(kube, manifest, owner)
    return _transition(status, generation, observe(kube, owner, model, manifests))


def _create_or_adopt(kube: Kube, manifest: dict[str, Any], owner: Owner) -> None:
    """Create a missing child (reads first: a periodic reconcile should not be a write storm);
    adopt an existing one that lacks our ownerReference. Children are never replaced."""
    meta = manifest["metadata"]
    existing = kube.get(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
    if existing is None:
        if kube.create(manifest) is not None:
            return
        existing = kube.get(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]) or {}
    references = (existing.get("metadata") or {}).get("ownerReferences") or []
    if not any(ref.get("uid") == owner.uid for ref in references):
        kube.patch(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"],
                   {"metadata": {"ownerReferences": [*references, owner.reference()],
                                 "labels": meta["labels"]}})


def observe(kube: Kube, owner: Owner, model: Any, manifests: list[dict[str, Any]]) -> Observed:
    namespace, name = owner.namespace, owner.name
    if isinstance(model, SynthJobSpec) and model.recipe.ray.mode == "cluster":
        return observe_rayjob(kube.get("ray.io/v1", "RayJob", namespace, name), model.suspend)
    job = kube.get("batch/v1", "Job", namespace, name)
    _sync_suspend(kube, job, model)
    selector = {"llm.tanuki.dev/kind": owner.kind.lower(), "llm.tanuki.dev/name": name}
    complete = job is not None and any(c.get("type") == "Complete" and c.get("status") == "True"
                                       for c in (job.get("status") or {}).get("conditions") or [])
    pods = kube.list("v1", "Pod", namespace, selector) if complete else []
    observed = observe_job(job, pods, model.suspend, queued=bool(model.scheduling.queueName))
    if observed.phase == "Running":
        observed.progress = _progress(kube, namespace, kube.list("v1", "Pod", namespace, selector))
    return observed


def _progress(kube: Kube, namespace: str, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest progress line in the pods' logs (global rank 0, in pod 0, prints it)."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        record = parse_progress(kube.pod_log(namespace, pod["metadata"]["name"]))
        if record is not None:
            return record
    return None


def _sync_suspend(kube: Kube, job: dict[str, Any] | None, model: JobSpec) -> None:
    """spec.suspend drives the Job's suspend, except under Kueue, which owns it."""
    if job is None or model.scheduling.queueName:
        return
    if bool((job.get("spec") or {}).get("suspend")) != model.suspend:
        meta = job["metadata"]
        kube.patch("batch/v1", "Job", meta["namespace"], meta["name"], {"spec": {"suspend": model.suspend}})


def _transition(status: dict[str, Any], generation: int | None, observed: Observed, valid: bool = True) -> Outcome:
    changed = status.get("phase") != observed.phase
    stamp = now()
    ready = observed.phase == "Succeeded" or (observed.ready_replicas or 0) > 0
    conditions = [
        _condition(status, "Valid", "True" if valid else "False", "SpecValid" if valid else observed.reason,
                   "" if valid else observed.message, stamp, generation),
        _condition(status, "Ready", "True" if ready else "False", observed.reason, observed.message, stamp, generation),
    ]
    patch: dict[str, Any] = {
        "phase": observed.phase,
        "message": observed.message,
        "observedGeneration": generation,
        "conditions": conditions,
    }
    if observed.outputs:
        patch["outputs"] = observed.outputs
    if observed.start_time and not status.get("startTime"):
        patch["startTime"] = observed.start_time
    if observed.completion_time:
        patch["completionTime"] = observed.completion_time
    if observed.ready_replicas is not None:
        patch["replicas"] = observed.ready_replicas
    if observed.progress is not None:
        patch["progress"] = observed.progress
    patch.update(observed.extra)
    if not changed and all(status.get(key) == value for key, value in patch.items() if key != "conditions") \
            and _same_conditions(status.get("conditions") or [], conditions):
        return Outcome({})
    event = observed.event
    if changed and event is None:
        kind = "Warning" if observed.phase in ("Failed", "ValidationFailed") else "Normal"
        event = (kind, observed.phase, observed.message)
    return Outcome(patch, event)


def _condition(status: dict[str, Any], kind: str, state: str, reason: str, message: str, stamp: str,
               generation: int | None) -> dict[str, Any]:
    previous = next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == state else stamp
    return {"type": kind, "status": state, "reason": reason, "message": message,
            "lastTransitionTime": since, "observedGeneration": generation}


def _same_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    keys = ("type", "status", "reason", "message", "observedGeneration")
    return [tuple(c.get(k) for k in keys) for c in old] == [tuple(c.get(k) for k in keys) for c in new]


CHILD_KINDS = {
    "ModelServer": [("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
                    ("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
                    ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("rbac.authorization.k8s.io/v1", "Role"),
                    ("v1", "ServiceAccount")],
    "SynthJob": [("ray.io/v1", "RayJob"), ("batch/v1", "Job"), ("v1", "ConfigMap")],
}
JOB_CHILDREN = [("batch/v1", "Job"), ("v1", "Service"), ("v1", "ConfigMap")]


def cleanup(kube: Kube, kind: str, body: dict[str, Any]) -> int:
    """Delete the children this resource owns (what garbage collection would do, without waiting
    for it); returns how many were deleted."""
    meta = body["metadata"]
    selector = {"llm.tanuki.dev/kind": kind.lower(), "llm.tanuki.dev/name": meta["name"]}
    deleted = 0
    for api_version, child_kind in CHILD_KINDS.get(kind, JOB_CHILDREN):
        try:
            children = kube.list(api_version, child_kind, meta["namespace"], selector)
        except ApiError as exc:
            if exc.status == 404:  # that API (e.g. KEDA, KubeRay) is not installed
                continue
            raise
        for child in children:
            references = child["metadata"].get("ownerReferences") or []
            if any(ref.get("uid") == meta["uid"] for ref in references):
                kube.delete(api_version, child_kind, meta["namespace"], child["metadata"]["name"])
                deleted += 1
    return deleted
