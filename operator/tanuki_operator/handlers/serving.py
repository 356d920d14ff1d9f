"""ModelServer reconcile: rollout state machine → per-revision Deployments → status.

The rollout state lives in ``status.rollout``; each reconcile observes the canary (Deployment
readiness, pod failures, vLLM's own error counters through the pods' proxy), lets
``tanuki_serving.rollout.decide`` move the state, then creates, scales and deletes the revision
Deployments to match and applies everything else (router, Services, autoscaler, monitoring) in
place. A revision is the hash of its pod template, so any change to what a replica runs is a new
revision and rolls out as a canary. Nothing here blocks: pauses are measured against the clock,
and the outcome says when to look again.
"""

from __future__ import annotations

import time
from typing import Any

from tanuki_operator.api.common import Phase
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.handlers.converge import converge, owned_by, prune
from tanuki_operator.k8s import KubeApi
from tanuki_operator.phases import Observed, poll_seconds
from tanuki_operator.render.common import Owner, Settings
from tanuki_operator.render.serving import (
    REVISION_LABEL,
    SERVICE_PORT,
    current_revision,
    deployment,
    pod_template,
    selector_string,
    server_selector,
    shared_manifests,
)
from tanuki_serving.metrics import ReplicaLoad, parse_vllm_metrics
from tanuki_serving.rollout import CanaryHealth, Revision, RolloutState, TrackReplicas, decide, next_check, targets, traffic_share

FAILING_REASONS = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                   "CreateContainerError", "InvalidImageName", "RunContainerError"}


def pod_failure(pods: list[dict[str, Any]], max_restarts: int) -> str | None:
    """Why these pods will not serve (crash loop, image, missing Secret, too many restarts), or None."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            state = container.get("state") or {}
            waiting = state.get("waiting") or {}
            terminated = (container.get("lastState") or {}).get("terminated") or state.get("terminated") or {}
            if waiting.get("reason") in FAILING_REASONS:
                said = f"pod {name}: {waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
                last = terminated.get("message", "").strip()  # the container's own last words, when kept
                return f"{said}; it said: {last[-600:]}" if last else said
            if container.get("restartCount", 0) > max_restarts:
                detail = terminated.get("message") or terminated.get("reason") or "restarted"
                return f"pod {name}: {container['restartCount']} restarts (exit {terminated.get('exitCode')}): {detail}"
    return None


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def revision_deployments(kube: KubeApi, owner: Owner) -> dict[str, dict[str, Any]]:
    """This ModelServer's vLLM Deployments by revision: one list per reconcile serves every check."""
    found = kube.list("apps/v1", "Deployment", owner.namespace, server_selector(owner))
    return {d["metadata"]["labels"][REVISION_LABEL]: d for d in found
            if REVISION_LABEL in (d["metadata"].get("labels") or {})}


def _ready_replicas(deployments: dict[str, dict[str, Any]], revision: str | None) -> int:
    return ((deployments.get(revision or "") or {}).get("status") or {}).get("readyReplicas") or 0


def canary_health(kube: KubeApi, owner: Owner, spec: ModelServerSpec, state: RolloutState,
                  deployments: dict[str, dict[str, Any]]) -> CanaryHealth | None:
    canary = state.canary
    if canary is None:
        return None
    wanted = targets(state, spec.rollout, spec.total_replicas()).get(canary.revision, 0)
    pods = kube.list("v1", "Pod", owner.namespace, {**server_selector(owner), REVISION_LABEL: canary.revision})
    load = ReplicaLoad()
    for pod in pods:
        if _ready(pod):
            text = kube.pod_proxy_get(owner.namespace, pod["metadata"]["name"], spec.port, "/metrics")
            if text:
                load = load + parse_vllm_metrics(text)
    return CanaryHealth(ready=_ready_replicas(deployments, canary.revision) >= wanted,
                        failure=pod_failure(pods, spec.rollout.analysis.maxRestarts),
                        requests=load.requests, errors=load.errors)


def _stable_complete(spec: ModelServerSpec, state: RolloutState, deployments: dict[str, dict[str, Any]]) -> bool:
    if state.stable is None:
        return True
    stable = state.stable.revision
    return _ready_replicas(deployments, stable) >= targets(state, spec.rollout, spec.total_replicas()).get(stable, 0)


def _converge_revisions(kube: KubeApi, settings: Settings, owner: Owner, spec: ModelServerSpec, desired: Revision,
                        deployments: dict[str, dict[str, Any]], wanted: dict[str, int],
                        models: dict[str, str]) -> list[str]:
    """The desired revision's Deployment is applied from the spec; older revisions keep the pod
    template they were created with and only get their replica count; unwanted ones are deleted."""
    changed = []
    for revision, replicas in wanted.items():
        found = deployments.get(revision)
        if revision == desired.id or found is None:
            # a revision other than the desired one is only rendered here if someone deleted its
            # Deployment: it comes back from the current spec under its old name
            template = pod_template(owner, spec, models[revision], settings)
            changed += converge(kube, [deployment(owner, Revision(revision, models[revision]), template, replicas)])
        elif (found.get("spec") or {}).get("replicas") != replicas:
            kube.patch("apps/v1", "Deployment", owner.namespace, found["metadata"]["name"],
                       {"spec": {"replicas": replicas}})
            changed.append(f"Deployment/{found['metadata']['name']}")
    for revision, found in deployments.items():
        if revision not in wanted and owned_by(found, owner):
            kube.delete("apps/v1", "Deployment", owner.namespace, found["metadata"]["name"])
            changed.append(f"Deployment/{found['metadata']['name']} (deleted)")
    return changed


def reconcile_modelserver(kube: KubeApi, settings: Settings, owner: Owner, spec: ModelServerSpec, model_path: str,
                          state: RolloutState, prune_kinds: tuple[tuple[str, str], ...] = (),
                          now: float | None = None) -> tuple[Observed, list[str]]:
    """Observe → decide → converge from the rollout ``state`` in the status; returns what to report and
    the children written."""
    now = time.time() if now is None else now
    desired = current_revision(owner, spec, model_path, settings)
    total = spec.total_replicas()
    deployments = revision_deployments(kube, owner)
    decision = decide(state, desired, spec.rollout, canary_health(kube, owner, spec, state, deployments), now,
                      total=total, stable_complete=_stable_complete(spec, state, deployments))
    state = decision.state
    wanted = targets(state, spec.rollout, total)
    changed = _converge_revisions(kube, settings, owner, spec, desired, deployments, wanted, state.revisions())
    shared = shared_manifests(owner, spec, settings)
    changed += converge(kube, shared)
    if prune_kinds:  # the spec changed: children it no longer asks for go (HPA ↔ KEDA, ServiceMonitor off)
        changed += prune(kube, owner, prune_kinds, shared, skip={("apps/v1", "Deployment")})
    stable = state.stable
    assert stable is not None, "decide always leaves a stable revision"
    stable_rev = stable.revision
    canary_rev = state.canary.revision if state.canary else None
    ready_of = {rev: _ready_replicas(deployments, rev) for rev in wanted}
    ready = sum(ready_of.values())
    state.trafficShare = traffic_share(state, spec.rollout, total)
    canary_ready = ready_of.get(canary_rev, 0) if canary_rev is not None else 0
    state.readyReplicas = TrackReplicas(stable=ready_of.get(stable_rev, 0), canary=canary_ready)
    extra = {"rollout": state.model_dump(mode="json"), "selector": selector_string(owner)}
    served = spec.engine.served_model_name or owner.name
    outputs = {"url": f"{kube.service_url(owner.namespace, owner.name, SERVICE_PORT)}/v1", "model": served,
               "checkpoint": stable.model}
    check = next_check(state, spec.rollout, now)
    # while a canary is analysed its error counters are read again (they change without events);
    # after a step of the state machine, the next one is decided on a fresh look right away
    requeue = None if check is None else min(check + 0.5, poll_seconds())
    if decision.event is not None:
        requeue = 0.0
    if ready_of.get(stable_rev, 0) > 0:
        return Observed(Phase.RUNNING, "Serving", decision.message, outputs=outputs, ready_replicas=ready,
                        extra=extra, event=decision.event, requeue_after=requeue), changed
    pods = kube.list("v1", "Pod", owner.namespace, {**server_selector(owner), REVISION_LABEL: stable_rev})
    failure = pod_failure(pods, spec.rollout.analysis.maxRestarts)
    if failure:
        return Observed(Phase.PENDING, "ReplicaFailing", failure, ready_replicas=ready, extra=extra,
                        requeue_after=requeue), changed
    return Observed(Phase.PENDING, "ReplicasStarting", f"waiting for a ready vLLM replica of revision {stable_rev}",
                    ready_replicas=ready, extra=extra, event=decision.event, requeue_after=requeue), changed
