"""ModelServer reconcile: rollout state machine → per-revision Deployments → status.

The rollout state lives in ``status.rollout``; each reconcile observes the canary (Deployment
readiness, pod failures, vLLM's own error counters through the pods' proxy), lets
``tanuki_serving.rollout.decide`` move the state, then creates, scales and deletes the revision
Deployments to match. Nothing here blocks: pauses are measured against the clock across polls.
"""

from __future__ import annotations

import time
from typing import Any

from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.k8s import ApiError, Kube
from tanuki_operator.phases import Observed
from tanuki_operator.render import Owner, Settings
from tanuki_operator.render.serving import (REVISION_LABEL, current_revision, modelserver_manifests,
                                            selector_string, server_selector)
from tanuki_serving.metrics import ReplicaLoad, parse_vllm_metrics
from tanuki_serving.rollout import CanaryHealth, Revision, decide, revision_models, targets, traffic_share

FAILING_REASONS = {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
                   "CreateContainerError", "InvalidImageName", "RunContainerError"}


def pod_failure(pods: list[dict[str, Any]], max_restarts: int) -> str | None:
    """Why these pods will not serve (crash loop, image, missing Secret, too many restarts), or None."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        name = pod["metadata"]["name"]
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            state = container.get("state") or {}
            waiting = state.get("waiting") or {}
            if waiting.get("reason") in FAILING_REASONS:
                return f"pod {name}: {waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
            terminated = (container.get("lastState") or {}).get("terminated") or state.get("terminated") or {}
            if container.get("restartCount", 0) > max_restarts:
                detail = terminated.get("message") or terminated.get("reason") or "restarted"
                return f"pod {name}: {container['restartCount']} restarts (exit {terminated.get('exitCode')}): {detail}"
    return None


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def revision_deployments(kube: Kube, owner: Owner) -> dict[str, dict[str, Any]]:
    """This ModelServer's vLLM Deployments by revision: one list per reconcile serves every check."""
    found = kube.list("apps/v1", "Deployment", owner.namespace, server_selector(owner))
    return {d["metadata"]["labels"][REVISION_LABEL]: d for d in found
            if REVISION_LABEL in (d["metadata"].get("labels") or {})}


def _ready_replicas(deployments: dict[str, dict[str, Any]], revision: str | None) -> int:
    return ((deployments.get(revision or "") or {}).get("status") or {}).get("readyReplicas") or 0


def canary_health(kube: Kube, owner: Owner, spec: ModelServerSpec, state: dict[str, Any],
                  deployments: dict[str, dict[str, Any]]) -> CanaryHealth | None:
    canary = state.get("canary")
    if canary is None:
        return None
    wanted = targets(state, spec.rollout, spec.total_replicas()).get(canary["revision"], 0)
    pods = kube.list("v1", "Pod", owner.namespace, {**server_selector(owner), REVISION_LABEL: canary["revision"]})
    load = ReplicaLoad()
    for pod in pods:
        if _ready(pod):
            text = kube.pod_proxy_get(owner.namespace, pod["metadata"]["name"], spec.port, "/metrics")
            if text:
                load = load + parse_vllm_metrics(text)
    return CanaryHealth(ready=_ready_replicas(deployments, canary["revision"]) >= wanted,
                        failure=pod_failure(pods, spec.rollout.analysis.maxRestarts),
                        requests=load.requests, errors=load.errors)


def _stable_complete(spec: ModelServerSpec, state: dict[str, Any], deployments: dict[str, dict[str, Any]]) -> bool:
    stable = (state.get("stable") or {}).get("revision")
    if stable is None:
        return True
    return _ready_replicas(deployments, stable) >= targets(state, spec.rollout, spec.total_replicas()).get(stable, 0)


def _sync_replicas(kube: Kube, owner: Owner, deployments: dict[str, dict[str, Any]], wanted: dict[str, int]) -> None:
    """The operator owns each revision's replica count (its share of the ModelServer's total) and
    deletes the Deployments of revisions no longer wanted."""
    for revision, found in deployments.items():
        name = found["metadata"]["name"]
        if revision in wanted:
            if (found.get("spec") or {}).get("replicas") != wanted[revision]:
                kube.patch("apps/v1", "Deployment", owner.namespace, name, {"spec": {"replicas": wanted[revision]}})
        elif any(ref.get("uid") == owner.uid for ref in found["metadata"].get("ownerReferences") or []):
            kube.delete("apps/v1", "Deployment", owner.namespace, name)


def reconcile_modelserver(kube: Kube, settings: Settings, owner: Owner, spec: ModelServerSpec, model_path: str,
                          status: dict[str, Any], create_or_adopt: Any, now: float | None = None) -> Observed:
    now = time.time() if now is None else now
    state = {key: value for key, value in (status.get("rollout") or {}).items()
             if key not in ("trafficShare", "readyReplicas")}
    desired = current_revision(spec, model_path, settings)
    total = spec.total_replicas()
    deployments = revision_deployments(kube, owner)
    decision = decide(state, desired, spec.rollout, canary_health(kube, owner, spec, state, deployments), now,
                      total=total, stable_complete=_stable_complete(spec, state, deployments))
    state = decision.state
    wanted = targets(state, spec.rollout, total)
    models = revision_models(state)
    revisions = [(Revision(revision, models[revision]), replicas) for revision, replicas in wanted.items()]
    for manifest in modelserver_manifests(owner, spec, settings, revisions):
        try:
            create_or_adopt(kube, manifest, owner)
        except ApiError as exc:
            if exc.status == 404 and manifest["kind"] in ("ServiceMonitor", "ScaledObject"):
                continue  # that API is not installed: serving works without it
            raise
    _sync_replicas(kube, owner, deployments, wanted)  # new Deployments were created with their count
    stable_rev = state["stable"]["revision"]
    ready_of = {rev: _ready_replicas(deployments, rev) for rev in wanted}
    ready = sum(ready_of.values())
    canary_rev = (state.get("canary") or {}).get("revision")
    rollout = {**state, "trafficShare": traffic_share(state, spec.rollout, total),
               "readyReplicas": {"stable": ready_of.get(stable_rev, 0), "canary": ready_of.get(canary_rev, 0)}}
    extra = {"rollout": rollout, "selector": selector_string(owner)}
    served = spec.engine.served_model_name or owner.name
    outputs = {"url": f"http://{owner.name}.{owner.namespace}.svc/v1", "model": served, "checkpoint": state["stable"]["model"]}
    if ready_of.get(stable_rev, 0) > 0:
        return Observed("Running", "Serving", decision.message, outputs=outputs, ready_replicas=ready,
                        extra=extra, event=decision.event)
    pods = kube.list("v1", "Pod", owner.namespace, {**server_selector(owner), REVISION_LABEL: stable_rev})
    failure = pod_failure(pods, spec.rollout.analysis.maxRestarts)
    if failure:
        return Observed("Pending", "ReplicaFailing", failure, ready_replicas=ready, extra=extra)
    return Observed("Pending", "ReplicasStarting", f"waiting for a ready vLLM replica of revision {stable_rev}",
                    ready_replicas=ready, extra=extra, event=decision.event)
