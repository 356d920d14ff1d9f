"""Canary rollout decisions (pure): one state machine for the operator and the local runner.

The state is one typed model, ``RolloutState``: the operator keeps it as the ModelServer's
``status.rollout`` (the CRD schema is generated from these models) and the local runner in its
status file::

    stable:   the revision receiving traffic
    canary:   the revision being rolled out, its step and since when it is healthy
    retiring: the previous stable after a promotion, kept until the new one runs all its replicas
    failedRevisions: rolled back; not retried until the spec changes
    history:  finished rollouts, newest last, bounded

``decide`` moves the state one step given what the caller observed of the canary; ``targets`` says
how many replicas each revision should have. The callers do the I/O: Deployments in a cluster,
vLLM processes plus ``vllm-router`` add/remove locally. Traffic share is the replica ratio behind
the router.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tanuki_common.quality import ANALYSIS_ERROR, QUALITY_REGRESSION, GateVerdict
from tanuki_serving.config import EngineConfig, RolloutPolicy

HISTORY_LIMIT = 10


class StatusModel(BaseModel):
    """Status fields: unknown keys rejected, field docstrings become CRD descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RevisionRef(StatusModel):
    """A served revision: a checkpoint with everything its replicas run."""

    revision: str
    """Content hash of what a replica runs (checkpoint, engine settings, image, pod template)."""
    model: str
    """Checkpoint path."""


class QualityStatus(StatusModel):
    """The quality gates' evaluation of the canary at its current step."""

    step: int
    """The step evaluated (index into spec.rollout.steps)."""
    evaluation: str = ""
    """The EvalJob that evaluates it (its pods, logs and report are the evidence; empty: latency alone)."""
    attempt: int = 1
    """Evaluations started for this step (a failed one is retried, with backoff)."""
    reason: str | None = None
    """QualityPassed, QualityRegression or AnalysisError; empty while it runs."""
    message: str = ""
    """The verdict's figures in words."""
    figures: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per gate, the numbers it decided on (win rate and its bound, log-likelihoods, grades)."""


class LatencyWindow(StatusModel):
    """vLLM's latency histograms of both tracks when the canary became healthy at its step: what the
    latency gate subtracts, so both are judged on the same window."""

    since: float
    """The canary's healthySince the window starts at (Unix seconds)."""
    stable: dict[str, dict[str, float]] = Field(default_factory=dict)
    """The stable revision's cumulative buckets: measure → upper bound → count."""
    canary: dict[str, dict[str, float]] = Field(default_factory=dict)
    """The canary's."""


class CanaryState(RevisionRef):
    """The revision being rolled out."""

    step: int = 0
    """Index into spec.rollout.steps."""
    stepStartedAt: float | None = None
    """When the current step began (Unix seconds)."""
    healthySince: float | None = None
    """Since when the canary has been healthy at this step (Unix seconds)."""
    quality: QualityStatus | None = None
    """The quality gates at this step (spec.rollout.analysis.quality)."""
    latencyWindow: LatencyWindow | None = None
    """Start of the latency gate's window at this step."""
    held: bool = False
    """Out of the router's pool until its quality gates pass (``when: beforeTraffic``): it runs one
    replica, evaluated on its own endpoint, and takes no traffic."""


class RetiringState(RevisionRef):
    """The previous stable revision after a promotion."""

    replicas: int = 0
    """Replicas it keeps until the promoted revision runs all of its own."""


RolloutResult = Literal["Promoted", "RolledBack", "Superseded"]


class RolloutRecord(RevisionRef):
    """One finished rollout."""

    result: RolloutResult
    """How it ended."""
    reason: str = ""
    """Why."""
    time: str | None = None
    """When (RFC 3339)."""


class TrafficShare(StatusModel):
    """Percent of requests per track (replica ratio behind the router)."""

    stable: int = 100
    """Percent to the stable revision."""
    canary: int = 0
    """Percent to the canary."""
    retiring: int = 0
    """Percent still to the previous stable revision right after a promotion."""


class TrackReplicas(StatusModel):
    """Ready replicas per track."""

    stable: int = 0
    """Ready replicas of the stable revision."""
    canary: int = 0
    """Ready replicas of the canary."""


class RolloutState(StatusModel):
    """What serves now and what is being rolled out."""

    stable: RevisionRef | None = None
    """Revision receiving traffic."""
    canary: CanaryState | None = None
    """Revision being rolled out, if any."""
    retiring: RetiringState | None = None
    """Previous stable revision, serving until the promoted one has all its replicas ready."""
    trafficShare: TrafficShare | None = None
    """Current split of the traffic (written by the caller from ``traffic_share``)."""
    readyReplicas: TrackReplicas | None = None
    """Ready replicas per track (written by the caller)."""
    history: list[RolloutRecord] = Field(default_factory=list)
    """Recent rollouts, newest last."""
    failedRevisions: list[str] = Field(default_factory=list)
    """Rolled-back revisions, not retried until the spec changes."""
    admission: QualityStatus | None = None
    """Set while the stable revision is the server's first and, with nothing to compare it with,
    waits out of the router's pool for the quality gates' absolute bars: its evaluation (no reason
    while it runs; QualityRegression: below a bar, it takes no traffic until the spec changes).
    Empty: the stable revision takes traffic."""

    @classmethod
    def of(cls, status: Mapping[str, Any] | None) -> RolloutState:
        """The rollout in a ModelServer's ``status`` (empty when it has none): the one way to read it."""
        return cls.model_validate((status or {}).get("rollout") or {})

    def revisions(self) -> dict[str, str]:
        """Checkpoint of every revision the state still runs (stable, canary, retiring)."""
        return {ref.revision: ref.model for ref in (self.stable, self.canary, self.retiring) if ref is not None}


@dataclass(frozen=True)
class Revision:
    """One servable version: a checkpoint with its engine settings."""

    id: str
    model: str

    def ref(self) -> RevisionRef:
        return RevisionRef(revision=self.id, model=self.model)


def revision_of(model: str, engine: EngineConfig, image: str = "") -> Revision:
    """Content address of what a local replica runs: changing the checkpoint, engine or image makes a new one."""
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
class QualityCheck:
    """What the caller knows of the quality gates at the canary's current step (given only when
    spec.rollout.analysis.quality asks for them)."""

    evaluation: str | None = None
    """The evaluation of this step (None: none started yet)."""
    attempt: int = 1
    """Its attempt number."""
    verdict: GateVerdict | None = None
    """Its verdict; None while it runs. A verdict without evidence (``passed`` None) holds the canary."""
    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per gate, the numbers of the verdict."""
    progress: str = ""
    """What the running evaluation is doing (its phase and message), for the canary's message."""


@dataclass
class Decision:
    state: RolloutState
    message: str
    event: tuple[str, str, str] | None = None
    """(Normal|Warning, reason, message) worth an Event."""
    notes: list[str] = field(default_factory=list)


def _share(canary: CanaryState, policy: RolloutPolicy) -> int:
    """The canary's current share (the steps may have been shortened since it started)."""
    return policy.steps[min(canary.step, len(policy.steps) - 1)]


def split_replicas(total: int, share: int) -> tuple[int, int]:
    """(stable, canary) replicas so the canary gets about ``share`` percent of the traffic.

    The canary has at least one replica and the stable at least one, so with one replica a
    step of any share runs one of each (50 %): capacity never drops below ``total`` mid-rollout.
    """
    total = max(total, 1)
    canary = max(1, round(total * share / 100))
    return max(1, total - canary), canary


def targets(state: RolloutState, policy: RolloutPolicy, total: int) -> dict[str, int]:
    """Replicas per revision id."""
    stable, canary, retiring = state.stable, state.canary, state.retiring
    if stable is None:
        return {}
    if state.admission is not None:  # a first revision judged against the bars runs one replica until it passes
        return {stable.revision: 1}
    wanted = {stable.revision: max(total, 1)}
    if canary is not None and canary.held:  # evaluated before it takes traffic: the stable keeps every replica
        wanted[canary.revision] = 1
    elif canary is not None:
        stable_n, canary_n = split_replicas(total, _share(canary, policy))
        wanted = {stable.revision: stable_n, canary.revision: canary_n}
    if retiring is not None and retiring.revision not in wanted:
        wanted[retiring.revision] = retiring.replicas
    return wanted


def traffic_share(state: RolloutState, policy: RolloutPolicy, total: int) -> TrafficShare:
    """Percent of requests each track gets, from the replica ratio."""
    if state.admission is not None:
        return TrafficShare(stable=0)  # nothing takes traffic before the first revision passes its bars
    wanted = targets(state, policy, total)
    canary_n = wanted.get(state.canary.revision, 0) if state.canary else 0
    if state.canary is not None and state.canary.held:
        del wanted[state.canary.revision]
        canary_n = 0
    replicas = sum(wanted.values()) or 1
    retiring_n = wanted.get(state.retiring.revision, 0) if state.retiring else 0
    return TrafficShare(stable=round(100 * (replicas - canary_n - retiring_n) / replicas),
                        canary=round(100 * canary_n / replicas), retiring=round(100 * retiring_n / replicas))


def _stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _record(state: RolloutState, revision: RevisionRef, result: RolloutResult, reason: str, now: float) -> None:
    state.history.append(RolloutRecord(revision=revision.revision, model=revision.model, result=result,
                                       reason=reason, time=_stamp(now)))
    del state.history[:-HISTORY_LIMIT]


def _failure(canary: CanaryState, policy: RolloutPolicy, health: CanaryHealth, now: float) -> str | None:
    analysis = policy.analysis
    if health.failure:
        return health.failure
    started = canary.stepStartedAt if canary.stepStartedAt is not None else now
    if not health.ready and now - started > analysis.readyTimeoutSeconds:
        return f"canary not ready within readyTimeoutSeconds ({analysis.readyTimeoutSeconds} s)"
    if health.smoke_failure:
        return f"smoke prompt failed: {health.smoke_failure}"
    if health.requests and health.requests >= max(analysis.minRequests, 1):
        rate = health.errors / health.requests
        if rate > analysis.maxErrorRate:
            return (f"error rate {rate:.1%} ({health.errors}/{health.requests}) above maxErrorRate "
                    f"{analysis.maxErrorRate:.1%}")
    return None


def next_check(state: RolloutState, policy: RolloutPolicy, now: float) -> float | None:
    """Seconds until the state could move without anything else changing (a pause ending, a ready
    timeout); None when only an observation can move it."""
    canary = state.canary
    if canary is None:
        return None
    if canary.healthySince is not None:
        return 0.0 if canary.held else max(0.0, canary.healthySince + policy.pauseSeconds - now)
    started = canary.stepStartedAt if canary.stepStartedAt is not None else now
    return max(0.0, started + policy.analysis.readyTimeoutSeconds - now)


def _quality_status(step: int, quality: QualityCheck) -> QualityStatus | None:
    if quality.evaluation is None and quality.verdict is None:
        return None
    verdict = quality.verdict
    return QualityStatus(step=step, evaluation=quality.evaluation or "", attempt=quality.attempt,
                         reason=verdict.reason if verdict else None, message=verdict.message if verdict else "",
                         figures=quality.figures if verdict else {})


def _admission(state: RolloutState, stable: RevisionRef, quality: QualityCheck | None) -> Decision:
    """The first revision against the quality gates' absolute bars: admitted to traffic on a pass,
    kept out (and marked failed) below a bar, held without evidence."""
    before = state.admission
    verdict = quality.verdict if quality is not None else None
    if quality is None or (verdict is not None and verdict.passed is True):
        state.admission = None
        said = f": {verdict.message}" if verdict is not None else ""
        message = f"revision {stable.revision} reached its quality bars{said}; it takes traffic"
        return Decision(state, message, ("Normal", "Admitted", message))
    state.admission = _quality_status(0, quality) or before
    announce = state.admission != before
    if verdict is None:
        return Decision(state, f"revision {stable.revision} out of traffic, waiting for its quality bars"
                               f" ({quality.progress or quality.evaluation or 'starting once it is ready'})")
    if verdict.passed is False:
        if stable.revision not in state.failedRevisions:
            state.failedRevisions = [*state.failedRevisions, stable.revision][-HISTORY_LIMIT:]
        message = (f"revision {stable.revision} is below its quality bars: {verdict.message}; it takes no traffic "
                   "(change spec.model or the engine to try again)")
        return Decision(state, message, ("Warning", QUALITY_REGRESSION, message) if announce else None)
    message = (f"revision {stable.revision} held out of traffic: no evidence from its quality bars "
               f"(attempt {quality.attempt}): {verdict.message}")
    return Decision(state, message, ("Warning", ANALYSIS_ERROR, message) if announce else None)


def decide(state: RolloutState | None, desired: Revision, policy: RolloutPolicy, health: CanaryHealth | None,
           now: float, total: int = 1, stable_complete: bool = True, quality: QualityCheck | None = None,
           before_traffic: bool = False, judge_first: bool = False) -> Decision:
    """The next rollout state. ``health`` describes the canary in ``state`` (None when there is none);
    ``total``: replicas of the ModelServer; ``stable_complete``: the stable revision runs every
    replica ``targets`` gives it, so a revision still retiring after a promotion may go;
    ``quality``: the quality gates of the canary's current step, when the policy has them — a step
    ends only on a passing verdict, a failing one rolls the canary back (``QualityRegression``) and
    one without evidence holds it (``AnalysisError``); ``before_traffic``: a new canary starts held
    out of the router's pool and is judged once, before its first step (``quality`` is then given
    only while it is held); ``judge_first``: the server's first revision waits out of traffic for
    the quality gates' absolute bars (``quality`` then judges it, alone)."""
    state = state.model_copy(deep=True) if state is not None else RolloutState()
    if state.retiring is not None and (stable_complete or state.retiring.revision == desired.id):
        state.retiring = None
    stable, canary = state.stable, state.canary
    if stable is None or (state.admission is not None and desired.id != stable.revision):
        if stable is not None:  # a first revision that never took traffic: the new one replaces it
            _record(state, stable, "Superseded", f"spec now asks for revision {desired.id}", now)
        state.stable = desired.ref()
        state.admission = QualityStatus(step=0) if judge_first else None
        if judge_first:
            return Decision(state, f"deploying revision {desired.id}, out of traffic until it reaches the quality "
                                   "gates' bars")
        return Decision(state, f"deploying revision {desired.id}")
    if state.admission is not None:
        return _admission(state, stable, quality)
    if canary is not None and canary.revision != desired.id:
        _record(state, canary, "Superseded", f"spec now asks for revision {desired.id}", now)
        state.canary = canary = None
    if desired.id == stable.revision:
        return Decision(state, f"serving revision {desired.id}")
    if canary is None:
        if desired.id in state.failedRevisions:
            return Decision(state, f"revision {desired.id} was rolled back; revision {stable.revision} keeps "
                                   "serving (change spec.model or the engine to try again)")
        state.canary = CanaryState(revision=desired.id, model=desired.model, step=0, stepStartedAt=now,
                                   held=before_traffic)
        message = (f"canary {desired.id} started out of traffic, for its quality gates" if before_traffic
                   else f"canary {desired.id} started at {policy.steps[0]}% of traffic")
        return Decision(state, message, ("Normal", "CanaryStarted", message))
    health = health or CanaryHealth(ready=False)
    failure = _failure(canary, policy, health, now)
    if failure is not None:
        if not policy.autoRollback:
            canary.healthySince = None
            return Decision(state, f"canary {canary.revision} is failing and held (autoRollback false): {failure}")
        _record(state, canary, "RolledBack", failure, now)
        state.failedRevisions = [*state.failedRevisions, canary.revision][-HISTORY_LIMIT:]
        state.canary = None
        message = f"canary {canary.revision} rolled back: {failure}; revision {stable.revision} keeps serving"
        return Decision(state, message, ("Warning", "RolledBack", message))
    share = _share(canary, policy)
    where = "out of traffic" if canary.held else f"at {share}%"
    if not health.ready:
        canary.healthySince = None
        return Decision(state, f"canary {canary.revision} starting ({where if canary.held else f'{share}% step'})")
    if canary.healthySince is None:
        canary.healthySince = now
    if quality is not None:
        before, canary.quality = canary.quality, _quality_status(canary.step, quality)
        verdict = quality.verdict
        if verdict is not None and verdict.passed is False:
            failure = f"quality gate failed: {verdict.message}"
            if not policy.autoRollback:
                return Decision(state, f"canary {canary.revision} is worse and held (autoRollback false): "
                                       f"{verdict.message}")
            _record(state, canary, "RolledBack", failure, now)
            state.failedRevisions = [*state.failedRevisions, canary.revision][-HISTORY_LIMIT:]
            state.canary = None
            message = f"canary {canary.revision} rolled back: {failure}; revision {stable.revision} keeps serving"
            return Decision(state, message, ("Warning", QUALITY_REGRESSION, message))
    if not canary.held and now - canary.healthySince < policy.pauseSeconds:  # a held canary has no traffic to watch
        return Decision(state, f"canary {canary.revision} healthy at {share}%, analysing")
    if quality is not None and (quality.verdict is None or quality.verdict.passed is not True):
        if quality.verdict is None:
            return Decision(state, f"canary {canary.revision} healthy {where}, waiting for its quality gates"
                                   f" ({quality.progress or quality.evaluation or 'starting'})")
        message = (f"canary {canary.revision} held {where}: no evidence from its quality gates "
                   f"(attempt {quality.attempt}): {quality.verdict.message}")
        return Decision(state, message, ("Warning", ANALYSIS_ERROR, message) if canary.quality != before else None)
    if canary.held:
        canary.held, canary.stepStartedAt, canary.healthySince = False, now, None
        said = f": {quality.verdict.message}" if quality is not None and quality.verdict else ""
        message = f"canary {canary.revision} passed its quality gates before traffic{said}; now at {share}%"
        return Decision(state, message, ("Normal", "CanaryAdmitted", message))
    if canary.step + 1 < len(policy.steps):
        canary.step, canary.stepStartedAt, canary.healthySince = canary.step + 1, now, None
        canary.latencyWindow = None
        if quality is not None:  # judged at each step; a verdict from before traffic stays as the evidence
            canary.quality = None
        message = f"canary {canary.revision} moved to {policy.steps[canary.step]}% of traffic"
        return Decision(state, message, ("Normal", "CanaryStep", message))
    if quality is not None and quality.verdict:
        passed = f"; quality: {quality.verdict.message}"
    elif canary.quality is not None:  # judged once, before it took traffic
        passed = f"; quality (before traffic): {canary.quality.message}"
    else:
        passed = ""
    _record(state, canary, "Promoted", f"healthy through steps {policy.steps}{passed}", now)
    # the old revision keeps its replicas until the promoted one has scaled up to all of them
    state.retiring = RetiringState(revision=stable.revision, model=stable.model,
                                   replicas=split_replicas(total, share)[0])
    state.stable = RevisionRef(revision=canary.revision, model=canary.model)
    state.canary = None
    message = f"revision {canary.revision} promoted ({canary.model})"
    return Decision(state, message, ("Normal", "Promoted", message))
