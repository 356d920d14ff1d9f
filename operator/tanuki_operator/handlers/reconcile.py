"""One reconciliation: validate → resolve lineage → render → converge the children → status.

No kopf here: it takes a ``Kube`` and returns the status to write, the events to emit and when to
look again, so it runs the same under the operator's work queue, in tests, and in a
crash-and-restart loop. Per-kind behaviour comes from the stage registry.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from tanuki_operator.api import API_VERSION
from tanuki_operator.api.arena import ArenaSpec
from tanuki_operator.api.common import JobSpec, ObjectRef, Phase, Progress, StageSpec, Status
from tanuki_operator.api.modelserver import INITIAL_MODEL_REASON, ModelServerSpec
from tanuki_operator.handlers.converge import converge, ensure_created, owned_by, prune
from tanuki_operator.handlers.serving import pod_failure, reconcile_modelserver
from tanuki_operator.k8s import KubeApi
from tanuki_operator.lineage import Resolution, StatusLookup, initial_stand_in, resolve, upstream_refs
from tanuki_operator.phases import Observed, observe_job, observe_rayjob, poll_seconds
from tanuki_operator.preflight import SECRET_MISSING, missing_secrets
from tanuki_operator.render import Owner, Settings, render
from tanuki_operator.render.common import owner_selector
from tanuki_operator.render.web import SERVICE_PORT as WEB_SERVICE_PORT
from tanuki_operator.render.web import TOKENS_KEY, issued_tokens, voter_tokens_name, voter_tokens_secret, web_selector
from tanuki_operator.stages import CHILD_KINDS, STAGES, WORKLOAD_CHILD, Stage, Workload, not_available_message
from tanuki_operator.units import now
from tanuki_operator.validation import summarize, validate_spec
from tanuki_pipelines.outputs import parse_progress
from tanuki_serving.rollout import RolloutState

STAGE_NOT_AVAILABLE = "StageNotAvailable"
RAY_POD_RESTARTS = 3
"""Restarts of a Ray head or worker pod (they restart, unlike a Job's) before the stage reports
them: a few are Ray recovering a node, more are a crash loop."""
SPEC_ANNOTATION = "llm.tanuki.dev/spec"
"""On the workload child: the spec (all but its mutable fields) it was created from."""
INPUTS_ANNOTATION = "llm.tanuki.dev/inputs"
"""On the workload child: the resolved inputs it was created with (it keeps them if upstreams change)."""
GENERATION_ANNOTATION = "llm.tanuki.dev/generation"
WEB_MAX_RESTARTS = 3
"""Restarts of an arena pod before its status says it is failing (a crash loop, a bad recipe)."""


@dataclass
class Outcome:
    status: dict[str, Any]
    """Fields of ``.status`` to merge (empty: nothing changed). None values delete."""
    events: list[tuple[str, str, str]] = field(default_factory=list)
    """(type Normal|Warning, reason, message) to emit."""
    requeue_after: float | None = None
    """Reconcile again after this many seconds even without a change."""
    upstreams: list[ObjectRef] = field(default_factory=list)
    """Resources this one reads from: their changes wake it."""
    changed: list[str] = field(default_factory=list)
    """Children written (``Kind/name``), for logs and tests."""

    @property
    def event(self) -> tuple[str, str, str] | None:
        return self.events[0] if self.events else None


def finished(status: Status, generation: int | None) -> bool:
    """Terminal for this generation: nothing to do until the spec changes. (A stage that was not
    available is looked at again: a newer operator may have it.)"""
    if status.observedGeneration != generation or status.phase is None or not status.phase.terminal:
        return False
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    return ready is None or ready.reason != STAGE_NOT_AVAILABLE


def reconcile(kube: KubeApi, settings: Settings, kind: str, body: dict[str, Any], clock: float | None = None) -> Outcome:
    """One reconcile of ``body``: its status is read (and validated) once here, typed from then on; the
    outcome's status is the JSON merge patch to write."""
    stage = STAGES[kind]
    meta, status = body["metadata"], Status.model_validate(body.get("status") or {})
    generation = meta.get("generation")
    model, errors = validate_spec(kind, body.get("spec"))
    if model is None:  # validate_spec returns a model exactly when there are no errors
        return transition(status, generation, Observed(Phase.VALIDATION_FAILED, "InvalidSpec", summarize(errors)),
                          valid=False)
    upstreams = upstream_refs(model)
    if not stage.available:
        outcome = transition(status, generation, Observed(Phase.FAILED, STAGE_NOT_AVAILABLE,
                                                          not_available_message(stage)))
        outcome.upstreams = upstreams
        return outcome
    if finished(status, generation):
        return Outcome({}, upstreams=upstreams)
    owner = Owner(kind=kind, name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    if stage.workload_of(model) is Workload.SERVER:
        assert isinstance(model, ModelServerSpec), f"{kind}: a server stage has a ModelServer spec"
        outcome = _reconcile_server(kube, settings, stage, owner, model, status, generation, clock)
    elif stage.workload_of(model) is Workload.WEB:
        assert isinstance(model, ArenaSpec), f"{kind}: a web stage has an Arena spec"
        outcome = _reconcile_web(kube, settings, stage, owner, model, status, generation)
    else:
        assert isinstance(model, JobSpec), f"{kind}: a batch stage has a job spec"
        outcome = _reconcile_batch(kube, settings, stage, owner, model, status, generation)
    outcome.upstreams = [*upstreams, *outcome.upstreams]
    return outcome


def _spec_changed(status: Status, generation: int | None) -> bool:
    """The spec changed since the last reconcile (children it no longer asks for may exist);
    a first reconcile has nothing to prune."""
    return status.observedGeneration not in (None, generation)


def _lookup(kube: KubeApi, namespace: str) -> StatusLookup:
    def lookup(upstream_kind: str, name: str) -> dict[str, Any] | None:
        found = kube.get(API_VERSION, upstream_kind, namespace, name)
        return None if found is None else (found.get("status") or {})
    return lookup


def _waiting(status: Status, generation: int | None, resolution: Resolution) -> Outcome | None:
    if resolution.errors:
        return transition(status, generation, Observed(Phase.WAITING, "UpstreamUnavailable", "; ".join(resolution.errors)))
    if resolution.waiting_for:
        return transition(status, generation, Observed(Phase.WAITING, "UpstreamPending",
                                                       "waiting for " + ", ".join(resolution.waiting_for)))
    return None


def secret_keys(kube: KubeApi, namespace: str, name: str) -> set[str] | None:
    """The keys of a Secret (None when there is none)."""
    found = kube.get("v1", "Secret", namespace, name)
    return None if found is None else set(found.get("data") or {}) | set(found.get("stringData") or {})


def _secrets_missing(kube: KubeApi, owner: Owner, model: StageSpec, status: Status,
                     generation: int | None) -> Outcome | None:
    """Waiting ``SecretMissing`` when a Secret key the pods mount is not there: before waiting for
    upstreams, so the mistake shows when the chain is applied, not after its upstreams ran. Secrets
    are not watched (the operator may only read them), so the controller's resync is what looks
    again once one is created, as it looks at every unfinished resource now and then."""
    missing = missing_secrets(model, lambda name: secret_keys(kube, owner.namespace, name))
    if not missing:
        return None
    return transition(status, generation, Observed(Phase.WAITING, SECRET_MISSING, "; ".join(missing)))


def _reconcile_server(kube: KubeApi, settings: Settings, stage: Stage, owner: Owner, model: ModelServerSpec,
                      status: Status, generation: int | None, clock: float | None) -> Outcome:
    rollout = status.rollout or RolloutState()
    if rollout.stable is None and (missing := _secrets_missing(kube, owner, model, status, generation)) is not None:
        return missing  # nothing serves yet: a replica could not start (one that serves keeps serving)
    resolution = resolve(model, model.storage, _lookup(kube, owner.namespace))
    serving = rollout.stable.model if rollout.stable is not None else None
    stand_in = initial_stand_in(resolution, serving)
    if stand_in is None and (waiting := _waiting(status, generation, resolution)) is not None:
        return waiting
    observed, changed = reconcile_modelserver(kube, settings, owner, model, stand_in or resolution.inputs["model"],
                                              rollout, prune_kinds=CHILD_KINDS[Workload.SERVER]
                                              if _spec_changed(status, generation) else (),
                                              now=clock)
    if stand_in is not None and observed.phase == Phase.RUNNING:
        observed.reason = INITIAL_MODEL_REASON
        observed.message = "serving spec.initialModel until " + ", ".join(resolution.waiting_for)
    outcome = transition(status, generation, observed)
    outcome.changed = changed
    outcome.upstreams = [ObjectRef(kind=kind, name=name) for kind, name in observed.wake_on]
    return outcome


def _reconcile_web(kube: KubeApi, settings: Settings, stage: Stage, owner: Owner, model: ArenaSpec,
                   status: Status, generation: int | None) -> Outcome:
    """An Arena: its children follow the spec while its models serve; once its pods run, a model
    that goes away or rolls out does not take the page down (its battles fail and say why)."""
    running = kube.get("apps/v1", "Deployment", owner.namespace, owner.name)
    if running is None and (missing := _secrets_missing(kube, owner, model, status, generation)) is not None:
        return missing
    resolution = resolve(model, model.storage, _lookup(kube, owner.namespace))
    waiting = _waiting(status, generation, resolution)
    if running is None and waiting is not None:
        return waiting
    changed: list[str] = []
    if waiting is None:
        manifests = render(stage, owner, model, resolution.inputs, settings)
        if model.identity.issued:
            changed += _issue_voter_tokens(kube, owner, model.identity.voters)
        changed += converge(kube, manifests)
        if _spec_changed(status, generation):
            changed += prune(kube, owner, CHILD_KINDS[Workload.WEB], manifests)
        running = kube.get("apps/v1", "Deployment", owner.namespace, owner.name) or running
    ready = ((running or {}).get("status") or {}).get("readyReplicas") or 0
    url = kube.service_url(owner.namespace, owner.name, WEB_SERVICE_PORT)
    if ready:
        message = f"{ready} of {model.replicas} arena pods ready"
        if waiting is not None:
            message += f"; the spec waits to apply: {waiting.status.get('message')}"
        observed = Observed(Phase.RUNNING, "Serving", message, outputs={"url": url}, ready_replicas=ready)
    elif failure := pod_failure(kube.list("v1", "Pod", owner.namespace, web_selector(owner)), WEB_MAX_RESTARTS):
        observed = Observed(Phase.PENDING, "PodFailing", failure, ready_replicas=0)
    else:
        observed = Observed(Phase.PENDING, "PodsStarting", "waiting for a ready arena pod", ready_replicas=0)
    outcome = transition(status, generation, observed)
    outcome.changed = changed
    return outcome


def _issue_voter_tokens(kube: KubeApi, owner: Owner, voters: list[str]) -> list[str]:
    """The Secret of the voters' tokens holds one for each voter of the spec (kept across reconciles)."""
    import base64
    import secrets

    found = kube.get("v1", "Secret", owner.namespace, voter_tokens_name(owner)) or {}
    existing = base64.b64decode((found.get("data") or {}).get(TOKENS_KEY, "")).decode()
    lines = issued_tokens(existing, voters, lambda: secrets.token_urlsafe(24))
    if found and lines == existing:
        return []
    kube.apply(voter_tokens_secret(owner, lines))
    return [f"Secret/{voter_tokens_name(owner)}"]


# ---- batch stages -------------------------------------------------------------------------------

def spec_record(model: StageSpec) -> dict[str, Any]:
    """The spec a workload child runs: every field but those allowed to change afterwards."""
    return model.model_dump(mode="json", by_alias=True, exclude=set(model.MUTABLE_FIELDS))


def changed_fields(before: Any, after: Any, path: str = "spec") -> list[str]:
    """Dotted paths of the leaves that differ between two JSON values."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            found += changed_fields(before.get(key), after.get(key), f"{path}.{key}")
        return found
    return [] if before == after else [path]


def _annotations(obj: dict[str, Any]) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _reconcile_batch(kube: KubeApi, settings: Settings, stage: Stage, owner: Owner, model: JobSpec,
                     status: Status, generation: int | None) -> Outcome:
    workload = stage.workload_of(model)
    api_version, child_kind = WORKLOAD_CHILD[workload]
    running = kube.get(api_version, child_kind, owner.namespace, owner.name)
    refused: list[str] = []
    run_generation = generation
    recorded = _annotations(running) if running is not None else {}
    if INPUTS_ANNOTATION in recorded:  # the Job runs what it was created with: its inputs, and its spec
        inputs = json.loads(recorded[INPUTS_ANNOTATION])
        refused = changed_fields(json.loads(recorded[SPEC_ANNOTATION]), spec_record(model))
        run_generation = int(recorded.get(GENERATION_ANNOTATION) or generation or 0)
    else:
        if (missing := _secrets_missing(kube, owner, model, status, generation)) is not None:
            return missing
        resolution = resolve(model, model.storage, _lookup(kube, owner.namespace))
        if (waiting := _waiting(status, generation, resolution)) is not None:
            return waiting
        inputs = resolution.inputs
    manifests = render(stage, owner, model, inputs, settings)
    workload_manifest = next(m for m in manifests if (m["apiVersion"], m["kind"]) == (api_version, child_kind))
    workload_manifest["metadata"]["annotations"] = {
        SPEC_ANNOTATION: json.dumps(spec_record(model), sort_keys=True, ensure_ascii=False),
        INPUTS_ANNOTATION: json.dumps(inputs, sort_keys=True, ensure_ascii=False),
        GENERATION_ANNOTATION: str(generation)}
    changed: list[str] = []
    if not refused:
        changed = converge(kube, [m for m in manifests if m is not workload_manifest],
                           fresh=status.observedGeneration is None)
        if _spec_changed(status, generation):
            changed += prune(kube, owner, CHILD_KINDS[workload], manifests, skip={(api_version, child_kind)})
        if running is None or not owned_by(running, owner):  # create it, or adopt one made before
            running = ensure_created(kube, workload_manifest, owner)
            changed.append(f"{child_kind}/{owner.name}")
    _sync_suspend(kube, running, model)
    observed = observe(kube, owner, model, workload, running)
    observed.extra["runGeneration"] = run_generation
    outcome = transition(status, generation, observed, refused=_refusal(refused, child_kind, owner, run_generation))
    outcome.changed = changed
    return outcome


def _refusal(fields: list[str], child_kind: str, owner: Owner, run_generation: int | None) -> str | None:
    if not fields:
        return None
    shown = ", ".join(fields[:5]) + (f" (+{len(fields) - 5} more)" if len(fields) > 5 else "")
    return (f"{shown}: cannot change once {child_kind} {owner.name} exists (it runs generation {run_generation}); "
            f"revert the change, or delete and re-create the {owner.kind} to run the new spec")


def observe(kube: KubeApi, owner: Owner, model: JobSpec, workload: Workload, child: dict[str, Any] | None) -> Observed:
    selector = owner_selector(owner)
    if workload is Workload.RAY:
        return _observe_ray(kube, owner, model, child, selector)
    complete = child is not None and any(c.get("type") == "Complete" and c.get("status") == "True"
                                         for c in (child.get("status") or {}).get("conditions") or [])
    pods = kube.list("v1", "Pod", owner.namespace, selector) if complete else []
    observed = observe_job(child, pods, model.suspend, queued=bool(model.scheduling.queueName))
    if observed.phase is Phase.RUNNING:
        pods = kube.list("v1", "Pod", owner.namespace, selector)
        failure = pod_failure(pods, max_restarts=0)  # a Job's pods never restart (restartPolicy Never)
        if failure is not None:  # active, but its container cannot start (a missing Secret, a bad image);
            # its pod's next change wakes the resource (pods are watched), no need to poll
            return Observed(Phase.PENDING, "PodFailing", failure, start_time=observed.start_time)
        observed.progress = _progress(kube, owner.namespace, pods)
        observed.requeue_after = poll_seconds()
    return observed


def _observe_ray(kube: KubeApi, owner: Owner, model: JobSpec, child: dict[str, Any] | None,
                 selector: dict[str, str]) -> Observed:
    """A RayJob's phase; its pods give the outputs once it succeeded, and say why it cannot start
    (a head or worker whose container cannot be created, a crash loop) while it has not."""
    pods = kube.list("v1", "Pod", owner.namespace, selector) if child is not None else []
    observed = observe_rayjob(child, model.suspend, pods)
    if observed.phase in (Phase.PENDING, Phase.RUNNING) and (failure := pod_failure(pods, RAY_POD_RESTARTS)):
        return Observed(Phase.PENDING, "PodFailing", failure, start_time=observed.start_time)
    return observed


def _progress(kube: KubeApi, namespace: str, pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest progress line in the pods' logs (global rank 0, in pod 0, prints it), as the
    ``Progress`` fields it has (a log is no place to trust for anything else)."""
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        record = parse_progress(kube.pod_log(namespace, pod["metadata"]["name"]))
        if record is not None:
            with contextlib.suppress(ValidationError):
                known = {key: record[key] for key in Progress.model_fields if key in record}
                return Progress.model_validate(known).model_dump(mode="json", exclude_none=True)
    return None


def _sync_suspend(kube: KubeApi, child: dict[str, Any] | None, model: JobSpec) -> None:
    """spec.suspend drives the workload's suspend, except under Kueue, which owns it."""
    if child is None or model.scheduling.queueName:
        return
    if bool((child.get("spec") or {}).get("suspend")) != model.suspend:
        meta = child["metadata"]
        kube.patch(child["apiVersion"], child["kind"], meta["namespace"], meta["name"],
                   {"spec": {"suspend": model.suspend}})
        child.setdefault("spec", {})["suspend"] = model.suspend


# ---- status -------------------------------------------------------------------------------------

def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def transition(status: Status, generation: int | None, observed: Observed, valid: bool = True,
               refused: str | None = None) -> Outcome:
    """The status patch (empty when nothing changed) and the events for ``observed``."""
    phase_changed = status.phase != observed.phase
    stamp = now()
    ready = observed.phase is Phase.SUCCEEDED or (observed.ready_replicas or 0) > 0
    if not valid:
        valid_condition = ("False", observed.reason, observed.message)
    elif refused:
        valid_condition = ("False", "ImmutableFieldChanged", refused)
    else:
        valid_condition = ("True", "SpecValid", "")
    conditions = [
        _condition(status, "Valid", *valid_condition, stamp, generation),
        _condition(status, "Ready", "True" if ready else "False", observed.reason, observed.message, stamp, generation),
    ]
    patch: dict[str, Any] = {
        "phase": str(observed.phase),
        "message": observed.message,
        "observedGeneration": generation,
        "conditions": conditions,
    }
    if observed.outputs:
        patch["outputs"] = observed.outputs
    if observed.start_time and not status.startTime:
        patch["startTime"] = observed.start_time
    if observed.completion_time:
        patch["completionTime"] = observed.completion_time
    if observed.ready_replicas is not None:
        patch["replicas"] = observed.ready_replicas
    if observed.progress is not None:
        patch["progress"] = observed.progress
    patch.update(observed.extra)
    events = []
    if phase_changed:
        kind = "Warning" if Phase(observed.phase).broken else "Normal"
        events.append((kind, str(observed.phase), observed.message))
    if observed.event is not None and observed.event not in events:
        events.append(observed.event)
    previous_refusal = next((c for c in status.conditions
                             if c.type == "Valid" and c.reason == "ImmutableFieldChanged"), None)
    if refused and (previous_refusal is None or previous_refusal.message != refused):
        events.append(("Warning", "ImmutableFieldChanged", refused))
    stored = status.model_dump(mode="json", exclude_none=True)
    unchanged = not phase_changed and _same_conditions(stored.get("conditions") or [], conditions) and all(
        _without_nulls(stored.get(key)) == _without_nulls(value) for key, value in patch.items() if key != "conditions")
    return Outcome({} if unchanged else patch, events, observed.requeue_after)


def _condition(status: Status, kind: str, state: str, reason: str, message: str, stamp: str,
               generation: int | None) -> dict[str, Any]:
    previous = next((c for c in status.conditions if c.type == kind), None)
    since = previous.lastTransitionTime if previous and previous.status == state and previous.lastTransitionTime else stamp
    return {"type": kind, "status": state, "reason": reason, "message": message,
            "lastTransitionTime": since, "observedGeneration": generation}


def _same_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    keys = ("type", "status", "reason", "message", "observedGeneration")
    return [tuple(c.get(k) for k in keys) for c in old] == [tuple(c.get(k) for k in keys) for c in new]

