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

from tanuki_common.quality import QUALITY_REGRESSION, GateVerdict, combine, latency_gate
from tanuki_operator.api.common import API_VERSION, KindName, Phase
from tanuki_operator.api.modelserver import LatencyGate, ModelServerSpec, QualityAnalysis
from tanuki_operator.handlers.converge import converge, owned_by, prune
from tanuki_operator.k8s import KubeApi
from tanuki_operator.phases import Observed, poll_seconds, stamp_seconds
from tanuki_operator.render.common import Owner, Settings
from tanuki_operator.render.serving import (
    REVISION_LABEL,
    SERVICE_PORT,
    TRAFFIC_LABEL,
    admits_pods,
    api_key_field,
    current_revision,
    deployment,
    pod_template,
    quality_evaluation,
    quality_evaluation_name,
    revision_service,
    revision_service_name,
    selector_string,
    server_selector,
    shared_manifests,
)
from tanuki_serving.metrics import (
    Histograms,
    ReplicaLoad,
    add_histograms,
    histogram_quantile,
    observations,
    parse_latency_histograms,
    parse_vllm_metrics,
    subtract_histograms,
)
from tanuki_serving.rollout import (
    CanaryHealth,
    LatencyWindow,
    QualityCheck,
    QualityStatus,
    Revision,
    RevisionRef,
    RolloutState,
    TrackReplicas,
    decide,
    next_check,
    targets,
    traffic_share,
)

MAX_BACKOFF = 16
"""A failed quality evaluation is retried after retrySeconds × 2^(attempt − 1), at most this many times retrySeconds."""

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
            if kube.get("v1", "Service", owner.namespace, revision_service_name(owner, revision)) is not None:
                kube.delete("v1", "Service", owner.namespace, revision_service_name(owner, revision))
                changed.append(f"Service/{revision_service_name(owner, revision)} (deleted)")
    changed += converge(kube, [revision_service(owner, spec, revision) for revision in wanted])
    return changed


def admit_pods(kube: KubeApi, owner: Owner, spec: ModelServerSpec, state: RolloutState) -> list[str]:
    """When revisions may be held back (``admits_pods``) the router routes only to pods labelled
    ``traffic=on``: every pod of the stable, retiring and admitted canary revisions gets it (the pods
    of a held canary or of a first revision waiting for its bars do not).
    The label is the pod's own, outside its Deployment's selector and template hash."""
    if not admits_pods(spec):
        return []
    admitted = {ref.revision for ref in (state.stable, state.retiring) if ref is not None}
    if state.admission is not None and state.stable is not None:  # a first revision waiting for its bars
        admitted.discard(state.stable.revision)
    if state.canary is not None and not state.canary.held:
        admitted.add(state.canary.revision)
    changed = []
    for pod in kube.list("v1", "Pod", owner.namespace, server_selector(owner)):
        labels = pod["metadata"].get("labels") or {}
        if labels.get(REVISION_LABEL) in admitted and labels.get(TRAFFIC_LABEL) != "on":
            kube.patch("v1", "Pod", owner.namespace, pod["metadata"]["name"],
                       {"metadata": {"labels": {TRAFFIC_LABEL: "on"}}})
            changed.append(f"Pod/{pod['metadata']['name']} (admitted to traffic)")
    return changed


def revision_url(kube: KubeApi, owner: Owner, revision: str) -> str:
    """A revision's own OpenAI endpoint (its Service), bypassing the router."""
    return f"{kube.service_url(owner.namespace, revision_service_name(owner, revision), SERVICE_PORT)}/v1"


def _reference(kube: KubeApi, owner: Owner, spec: ModelServerSpec, state: RolloutState) -> dict[str, Any]:
    """The EvalJob target the canary is compared with: another ModelServer, or the stable revision's own endpoint."""
    quality = spec.rollout.analysis.quality
    assert quality is not None and state.stable is not None
    if quality.against is not None:
        return {"from": {"kind": "ModelServer", "name": quality.against.modelServer},
                **api_key_field(quality.against.apiKey)}
    return {"url": revision_url(kube, owner, state.stable.revision), "model": spec.engine.served_model_name or owner.name,
            "tokenizer": state.stable.model, **api_key_field(spec.auth.apiKey)}


def _verdict(evaluation: dict[str, Any]) -> tuple[GateVerdict | None, dict[str, dict[str, float]]]:
    """The verdict of a quality evaluation (EvalJob) from its status; None while it runs."""
    status = evaluation.get("status") or {}
    phase = status.get("phase")
    if phase == Phase.SUCCEEDED:
        found = (status.get("outputs") or {}).get("verdict") or {}
        if not isinstance(found.get("passed"), bool | None) or "message" not in found:
            return GateVerdict("all", None, f"EvalJob/{evaluation['metadata']['name']} published no verdict"), {}
        return GateVerdict("all", found["passed"], found["message"]), found.get("figures") or {}
    if phase in (Phase.FAILED, Phase.VALIDATION_FAILED):
        return GateVerdict("all", None, f"EvalJob/{evaluation['metadata']['name']} {phase}: "
                                        f"{status.get('message', '')}".rstrip(": ")), {}
    return None, {}


def _progress(evaluation: dict[str, Any]) -> str:
    """What a running evaluation is doing, for the canary's message (e.g. waiting for its judge)."""
    status = evaluation.get("status") or {}
    said = f"EvalJob/{evaluation['metadata']['name']}: {status.get('phase') or 'Pending'}"
    return f"{said}: {status['message']}" if status.get("message") else said


def quality_check(kube: KubeApi, owner: Owner, spec: ModelServerSpec, state: RolloutState, now: float,
                  deployments: dict[str, dict[str, Any]]) -> tuple[QualityCheck | None, list[str], float | None]:
    """The quality gates of the canary's current step: the EvalJob judging it (created once the
    canary is healthy at the step, read while it runs, started again with backoff when it fails)
    and the latency gate over the step's pause; or of a first revision waiting for the bars (judged
    alone once a replica is ready). None when the spec has no quality gates or nothing is judged.
    Also returns the EvalJobs created and when a failed evaluation is retried."""
    quality, canary, stable = spec.rollout.analysis.quality, state.canary, state.stable
    if quality is None or stable is None:
        return None, [], None
    if state.admission is not None:
        if quality.recipe is None:
            return None, [], None
        ready = _ready_replicas(deployments, stable.revision) > 0
        return _evaluation(kube, owner, spec, now, quality, stable, state.admission, ready, reference=None)
    if canary is None or (quality.before_traffic() and not canary.held):  # judged once, before its first step
        return None, [], None
    itself = [field for field, server in quality.servers().items() if server == owner.name]
    if itself:  # its evaluation would wait for this very rollout to settle
        return QualityCheck(None, 1, GateVerdict("all", None, f"{itself[0]}: names this ModelServer itself; "
                                                              "the canary cannot be judged by what it rolls out on")), [], None
    check, created, retry_at = QualityCheck(), list[str](), None
    if quality.recipe is not None:
        known = canary.quality if canary.quality is not None and canary.quality.step == canary.step else None
        check, created, retry_at = _evaluation(kube, owner, spec, now, quality, canary, known,
                                               canary.healthySince is not None,
                                               reference=_reference(kube, owner, spec, state), step=canary.step)
    if quality.latency is None:
        return check, created, retry_at
    latency = _latency(kube, owner, spec, state, now, quality.latency)
    asked = [check.verdict, latency] if quality.recipe is not None else [latency]
    parts = [verdict for verdict in asked if verdict is not None]
    if any(verdict.passed is False for verdict in parts) or len(parts) == len(asked):  # a failure, or all in
        check.verdict = combine(parts)
        if latency is not None:
            check.figures = {**check.figures, "latency": latency.figures}
    else:
        check.verdict = None
    return check, created, retry_at


def _evaluation(kube: KubeApi, owner: Owner, spec: ModelServerSpec, now: float, quality: QualityAnalysis,
                subject: RevisionRef, known: QualityStatus | None, serving: bool, reference: dict[str, Any] | None,
                step: int = 0) -> tuple[QualityCheck, list[str], float | None]:
    """The EvalJob judging ``subject`` (a canary at ``step`` against ``reference``, or a first
    revision alone against the bars): created once it ``serving``, retried with backoff when it fails."""
    attempt = known.attempt if known is not None else 1
    name = quality_evaluation_name(owner, subject.revision, step, attempt)

    def start(number: int) -> tuple[QualityCheck, list[str], None]:
        """Creates evaluation ``number``."""
        manifest = quality_evaluation(owner, spec, subject, revision_url(kube, owner, subject.revision),
                                      reference, step, number)
        created = kube.create(manifest) is not None
        return QualityCheck(manifest["metadata"]["name"], number), \
            [f"EvalJob/{manifest['metadata']['name']}"] if created else [], None

    found = kube.get(API_VERSION, "EvalJob", owner.namespace, name)
    if found is None:
        if not serving:  # evaluated once it serves (a canary at this step, a first revision's ready replica)
            return QualityCheck(), [], None
        return start(attempt)
    verdict, figures = _verdict(found)
    retry_at = None
    if verdict is not None and verdict.passed is None:
        ended = stamp_seconds((found.get("status") or {}).get("completionTime")) or now
        retry_at = ended + quality.retrySeconds * min(2 ** (attempt - 1), MAX_BACKOFF)
        if now >= retry_at:
            return start(attempt + 1)
    return QualityCheck(name, attempt, verdict, figures, progress=_progress(found)), [], retry_at


def _track_histograms(kube: KubeApi, owner: Owner, spec: ModelServerSpec, revision: str) -> Histograms:
    """vLLM's latency histograms summed over one revision's ready replicas."""
    found: Histograms = {}
    for pod in kube.list("v1", "Pod", owner.namespace, {**server_selector(owner), REVISION_LABEL: revision}):
        if _ready(pod):
            text = kube.pod_proxy_get(owner.namespace, pod["metadata"]["name"], spec.port, "/metrics")
            if text:
                found = add_histograms(found, parse_latency_histograms(text))
    return found


def _latency(kube: KubeApi, owner: Owner, spec: ModelServerSpec, state: RolloutState, now: float,
             gate: LatencyGate) -> GateVerdict | None:
    """The latency gate once the step's pause is over, on what both tracks observed since the canary
    became healthy (the window's start is kept in ``state.canary.latencyWindow``); None before."""
    canary, stable = state.canary, state.stable
    assert canary is not None and stable is not None
    if canary.healthySince is None:
        return None
    readings = {"canary": _track_histograms(kube, owner, spec, canary.revision),
                "stable": _track_histograms(kube, owner, spec, stable.revision)}
    window = canary.latencyWindow
    if window is None or window.since != canary.healthySince:
        canary.latencyWindow = LatencyWindow(since=canary.healthySince, **readings)
        return None
    if now - canary.healthySince < spec.rollout.pauseSeconds:
        return None
    seen = {"canary": subtract_histograms(readings["canary"], window.canary),
            "stable": subtract_histograms(readings["stable"], window.stable)}
    counts = {track: observations(histograms.get("time_to_first_token", {})) for track, histograms in seen.items()}
    if any(count < gate.minRequests for count in counts.values()):
        return GateVerdict("latency", None, f"{counts['canary']:.0f} canary and {counts['stable']:.0f} stable requests "
                                            f"in the window (minRequests {gate.minRequests})")
    p95 = {track: {measure: histogram_quantile(0.95, buckets) for measure, buckets in histograms.items()}
           for track, histograms in seen.items()}
    return latency_gate({m: v for m, v in p95["canary"].items() if v is not None},
                        {m: v for m, v in p95["stable"].items() if v is not None}, gate.maxRatio)


def reconcile_modelserver(kube: KubeApi, settings: Settings, owner: Owner, spec: ModelServerSpec, model_path: str,
                          state: RolloutState, prune_kinds: tuple[tuple[str, str], ...] = (),
                          now: float | None = None) -> tuple[Observed, list[str]]:
    """Observe → decide → converge from the rollout ``state`` in the status; returns what to report and
    the children written."""
    now = time.time() if now is None else now
    state = state.model_copy(deep=True)  # the quality check writes into it; the caller's is what is stored
    desired = current_revision(owner, spec, model_path, settings)
    total = spec.total_replicas()
    deployments = revision_deployments(kube, owner)
    gates = spec.rollout.analysis.quality
    quality, evaluations, retry_at = quality_check(kube, owner, spec, state, now, deployments)
    decision = decide(state, desired, spec.rollout, canary_health(kube, owner, spec, state, deployments), now,
                      total=total, stable_complete=_stable_complete(spec, state, deployments), quality=quality,
                      before_traffic=gates is not None and gates.before_traffic(),
                      judge_first=gates is not None and gates.judges_first())
    state = decision.state
    wanted = targets(state, spec.rollout, total)
    changed = evaluations + _converge_revisions(kube, settings, owner, spec, desired, deployments, wanted,
                                                state.revisions())
    changed += admit_pods(kube, owner, spec, state)
    shared = shared_manifests(owner, spec, settings)
    changed += converge(kube, shared)
    if prune_kinds:  # the spec changed: children it no longer asks for go (HPA ↔ KEDA, ServiceMonitor off)
        revision_services = [revision_service(owner, spec, revision) for revision in wanted]
        changed += prune(kube, owner, prune_kinds, [*shared, *revision_services], skip={("apps/v1", "Deployment")})
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
    wake_on: list[tuple[KindName, str]] = []
    judged = state.canary is not None or state.admission is not None
    if quality is not None and judged and quality.evaluation is not None:
        # a running evaluation wakes the server when it ends; a failed one is retried at its time
        wake_on = [("EvalJob", quality.evaluation)]
        if check in (0.0, None) and (quality.verdict is None or quality.verdict.passed is None):
            check = poll_seconds() if retry_at is None else max(retry_at - now, 0.0)
    # while a canary is analysed its error counters are read again (they change without events);
    # after a step of the state machine, the next one is decided on a fresh look right away
    requeue = None if check is None else min(check + 0.5, poll_seconds())
    if decision.event is not None:
        requeue = 0.0
    if state.admission is not None:  # a first revision out of traffic until it reaches the quality bars
        reason = QUALITY_REGRESSION if state.admission.reason == QUALITY_REGRESSION else "AwaitingQuality"
        return Observed(Phase.PENDING, reason, decision.message, ready_replicas=ready, extra=extra,
                        event=decision.event, requeue_after=requeue, wake_on=wake_on), changed
    if ready_of.get(stable_rev, 0) > 0:
        return Observed(Phase.RUNNING, "Serving", decision.message, outputs=outputs, ready_replicas=ready,
                        extra=extra, event=decision.event, requeue_after=requeue, wake_on=wake_on), changed
    pods = kube.list("v1", "Pod", owner.namespace, {**server_selector(owner), REVISION_LABEL: stable_rev})
    failure = pod_failure(pods, spec.rollout.analysis.maxRestarts)
    if failure:
        return Observed(Phase.PENDING, "ReplicaFailing", failure, ready_replicas=ready, extra=extra,
                        requeue_after=requeue), changed
    return Observed(Phase.PENDING, "ReplicasStarting", f"waiting for a ready vLLM replica of revision {stable_rev}",
                    ready_replicas=ready, extra=extra, event=decision.event, requeue_after=requeue), changed
