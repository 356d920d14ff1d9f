"""Canary rollout decisions (pure): one state machine for the operator and the local runner.

The state is a JSON-able dict kept in the ModelServer's ``status.rollout`` (or the local runner's
status file)::

    stable:  {revision, model}                     the revision receiving traffic
    canary:  {revision, model, step, stepStartedAt, healthySince} | None
    retiring: {revision, model, replicas} | None   the previous stable after a promotion, kept
                                                   until the new one runs all its replicas
    failedRevisions: [revision, ...]               rolled back; not retried until the spec changes
    history: [{revision, model, result, reason, time}, ...]   newest last, bounded

``decide`` moves the state one step given what the caller observed of the canary; ``targets`` says
how many replicas each revision should have. The callers do the I/O: Deployments in a cluster,
vLLM processes plus ``vllm-router`` add/remove locally. Traffic share is the replica ratio behind
the router.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from tanuki_serving.config import EngineConfig, RolloutPolicy

HISTORY_LIMIT = 10


@dataclass(frozen=True)
class Revision:
    """One servable version: a checkpoint with its engine settings."""

    id: str
    model: str

    def as_dict(self) -> dict[str, Any]:
        return {"revision": self.id, "model": self.model}


def revision_of(model: str, engine: EngineConfig, image: str = "") -> Revision:
    """Content address of what a replica runs: changing the checkpoint, engine or image makes a new one."""
    payload = json.dumps({"model": model, "engine": engine.model_dump(mode="json"), "image": image}, sort_keys=True)
    return Revision(hashlib.sha256(payload.encode()).hexdigest()[:10], model)


@dataclass
class CanaryHealth:
    """What the caller observed of the canary replicas of the current step."""

    ready: bool
    """Every canary replica the step wants is up and passes /health."""
    failure: str | None = None
    """A replica exited, crash-loops, or cannot start (e.g. vLLM cannot load the checkpoint)."""
    requests: int = 0
    """API responses the canary served."""
    errors: int = 0
    """Of those, 5xx."""
    smoke_failure: str | None = None
    """Why a smoke prompt failed (None: passed or none configured)."""


@dataclass
class Decision:
    state: dict[str, Any]
    message: str
    event: tuple[str, str, str] | None = None
    """(Normal|Warning, reason, message) worth an Event."""
    notes: list[str] = field(default_factory=list)


def _share(canary: dict[str, Any], policy: RolloutPolicy) -> int:
    """The canary's current share (the steps may have been shortened since it started)."""
    return policy.steps[min(canary["step"], len(policy.steps) - 1)]


def split_replicas(total: int, share: int) -> tuple[int, int]:
    """(stable, canary) replicas so the canary gets about ``share`` percent of the traffic.

    The canary has at least one replica and the stable at least one, so with one replica a
    step of any share runs one of each (50 %): capacity never drops below ``total`` mid-rollout.
    """
    total = max(total, 1)
    canary = max(1, round(total * share / 100))
    return max(1, total - canary), canary


def targets(state: dict[str, Any], policy: RolloutPolicy, total: int) -> dict[str, int]:
    """Replicas per revision id."""
    stable, canary = state.get("stable"), state.get("canary")
    if stable is None:
        return {}
    wanted = {stable["revision"]: max(total, 1)}
    if canary is not None:
        stable_n, canary_n = split_replicas(total, _share(canary, policy))
        wanted = {stable["revision"]: stable_n, canary["revision"]: canary_n}
    retiring = state.get("retiring")
    if retiring is not None and retiring["revision"] not in wanted:
        wanted[retiring["revision"]] = retiring["replicas"]
    return wanted


def revision_models(state: dict[str, Any]) -> dict[str, str]:
    """Checkpoint of every revision the state still runs (stable, canary, retiring)."""
    return {state[track]["revision"]: state[track]["model"] for track in ("stable", "canary", "retiring")
            if state.get(track)}


def traffic_share(state: dict[str, Any], policy: RolloutPolicy, total: int) -> dict[str, int]:
    """Percent of requests each track gets, from the replica ratio."""
    wanted = targets(state, policy, total)
    replicas = sum(wanted.values()) or 1
    canary, retiring = state.get("canary"), state.get("retiring")
    canary_n = wanted.get(canary["revision"], 0) if canary else 0
    retiring_n = wanted.get(retiring["revision"], 0) if retiring else 0
    return {"stable": round(100 * (replicas - canary_n - retiring_n) / replicas),
            "canary": round(100 * canary_n / replicas), "retiring": round(100 * retiring_n / replicas)}


def _stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _record(state: dict[str, Any], revision: dict[str, Any], result: str, reason: str, now: float) -> None:
    history = state.setdefault("history", [])
    history.append({"revision": revision["revision"], "model": revision["model"], "result": result,
                    "reason": reason, "time": _stamp(now)})
    del history[:-HISTORY_LIMIT]


def _failure(canary: dict[str, Any], policy: RolloutPolicy, health: CanaryHealth, now: float) -> str | None:
    analysis = policy.analysis
    if health.failure:
        return health.failure
    if not health.ready and now - canary["stepStartedAt"] > analysis.readyTimeoutSeconds:
        return f"canary not ready within readyTimeoutSeconds ({analysis.readyTimeoutSeconds} s)"
    if health.smoke_failure:
        return f"smoke prompt failed: {health.smoke_failure}"
    if health.requests and health.requests >= max(analysis.minRequests, 1):
        rate = health.errors / health.requests
        if rate > analysis.maxErrorRate:
            return (f"error rate {rate:.1%} ({health.errors}/{health.requests}) above maxErrorRate "
                    f"{analysis.maxErrorRate:.1%}")
    return None


def decide(state: dict[str, Any], desired: Revision, policy: RolloutPolicy, health: CanaryHealth | None,
           now: float, total: int = 1, stable_complete: bool = True) -> Decision:
    """The next rollout state. ``health`` describes the canary in ``state`` (None when there is none);
    ``total``: replicas of the ModelServer; ``stable_complete``: the stable revision runs every
    replica ``targets`` gives it, so a revision still retiring after a promotion may go."""
    state = copy.deepcopy(state) if state else {}
    state.setdefault("history", [])
    state.setdefault("failedRevisions", [])
    if state.get("retiring") is not None and (stable_complete or state["retiring"]["revision"] == desired.id):
        state["retiring"] = None
    stable, canary = state.get("stable"), state.get("canary")
    if stable is None:
        state["stable"] = desired.as_dict()
        return Decision(state, f"deploying revision {desired.id}")
    if canary is not None and canary["revision"] != desired.id:
        _record(state, canary, "Superseded", f"spec now asks for revision {desired.id}", now)
        state["canary"] = canary = None
    if desired.id == stable["revision"]:
        return Decision(state, f"serving revision {desired.id}")
    if canary is None:
        if desired.id in state["failedRevisions"]:
            return Decision(state, f"revision {desired.id} was rolled back; revision {stable['revision']} keeps "
                                   "serving (change spec.model or the engine to try again)")
        state["canary"] = {**desired.as_dict(), "step": 0, "stepStartedAt": now, "healthySince": None}
        message = f"canary {desired.id} started at {policy.steps[0]}% of traffic"
        return Decision(state, message, ("Normal", "CanaryStarted", message))
    health = health or CanaryHealth(ready=False)
    failure = _failure(canary, policy, health, now)
    if failure is not None:
        if not policy.autoRollback:
            canary["healthySince"] = None
            return Decision(state, f"canary {canary['revision']} is failing and held (autoRollback false): {failure}")
        _record(state, canary, "RolledBack", failure, now)
        state["failedRevisions"] = [*state["failedRevisions"], canary["revision"]][-HISTORY_LIMIT:]
        state["canary"] = None
        message = f"canary {canary['revision']} rolled back: {failure}; revision {stable['revision']} keeps serving"
        return Decision(state, message, ("Warning", "RolledBack", message))
    share = _share(canary, policy)
    if not health.ready:
        canary["healthySince"] = None
        return Decision(state, f"canary {canary['revision']} starting ({share}% step)")
    if canary.get("healthySince") is None:  # a merge patch drops null fields from the stored status
        canary["healthySince"] = now
    if now - canary["healthySince"] < policy.pauseSeconds:
        return Decision(state, f"canary {canary['revision']} healthy at {share}%, analysing")
    if canary["step"] + 1 < len(policy.steps):
        canary.update(step=canary["step"] + 1, stepStartedAt=now, healthySince=None)
        message = f"canary {canary['revision']} moved to {policy.steps[canary['step']]}% of traffic"
        return Decision(state, message, ("Normal", "CanaryStep", message))
    _record(state, canary, "Promoted", f"healthy through steps {policy.steps}", now)
    # the old revision keeps its replicas until the promoted one has scaled up to all of them
    state["retiring"] = {**stable, "replicas": split_replicas(total, share)[0]}
    state["stable"] = {"revision": canary["revision"], "model": canary["model"]}
    state["canary"] = None
    message = f"revision {canary['revision']} promoted ({canary['model']})"
    return Decision(state, message, ("Normal", "Promoted", message))
