"""Children's observed state → the resource's phase, message and outputs (pure)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tanuki_operator.api.common import KindName, Phase


def stamp_seconds(stamp: str | None) -> float | None:
    """A Kubernetes timestamp (RFC 3339, ``Z``) as epoch seconds; None when unset."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def poll_seconds() -> float:
    """How often something that changes without events is looked at again: a running stage's progress
    (its pods' logs), a canary under analysis (vLLM's error counters). ``TANUKI_POLL_SECONDS``, 15 by
    default (``tanuki local`` looks every 2 s)."""
    return float(os.environ.get("TANUKI_POLL_SECONDS", "15"))


@dataclass
class Observed:
    phase: Phase
    reason: str
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    start_time: str | None = None
    completion_time: str | None = None
    ready_replicas: int | None = None
    progress: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Further status fields (ModelServer: rollout, selector)."""
    event: tuple[str, str, str] | None = None
    """An Event worth emitting even without a phase change (e.g. a rollout step)."""
    requeue_after: float | None = None
    """Look again after this many seconds even if no child changes (progress in logs, a rollout pause)."""
    wake_on: list[tuple[KindName, str]] = field(default_factory=list)
    """(kind, name) of other tanuki resources whose phase changes wake this one (a ModelServer's
    quality evaluation, an EvalJob)."""


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions: list[dict[str, Any]] = (obj.get("status") or {}).get("conditions") or []
    for condition in conditions:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def outputs_from_pods(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the JSON termination messages stages write (their outputs.json) from the job's pods."""
    outputs: dict[str, Any] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((container.get("state") or {}).get("terminated") or {}).get("message")
            try:
                parsed = json.loads(message) if message else None
            except json.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                outputs.update(parsed)
    return outputs


def observe_job(job: dict[str, Any] | None, pods: list[dict[str, Any]], suspended: bool,
                queued: bool = False) -> Observed:
    if job is None:
        return Observed(Phase.PENDING, "Creating", "creating children")
    status = job.get("status") or {}
    start = status.get("startTime")
    if (complete := _condition(job, "Complete")) is not None:
        return Observed(Phase.SUCCEEDED, "JobComplete", complete.get("message") or "finished",
                        outputs_from_pods(pods), start, status.get("completionTime") or complete.get("lastTransitionTime"))
    if (failed := _condition(job, "Failed")) is not None:
        reason = failed.get("reason") or "JobFailed"
        return Observed(Phase.FAILED, reason, failed.get("message") or reason, {}, start,
                        failed.get("lastTransitionTime"))
    if suspended:
        return Observed(Phase.SUSPENDED, "Suspended", "job is suspended", start_time=start)
    if queued and (job.get("spec") or {}).get("suspend"):
        return Observed(Phase.PENDING, "Queued", "waiting for Kueue to admit the job", start_time=start)
    if _condition(job, "Suspended") is not None:
        return Observed(Phase.SUSPENDED, "Suspended", "job is suspended", start_time=start)
    if status.get("active") or status.get("ready"):
        return Observed(Phase.RUNNING, "PodsActive", f"{status.get('active', 0)} pod(s) active", start_time=start)
    return Observed(Phase.PENDING, "PodsPending", "waiting for pods to start", start_time=start)


def observe_rayjob(rayjob: dict[str, Any] | None, suspended: bool, pods: list[dict[str, Any]]) -> Observed:
    """``pods``: the stage's pods; its submitter's termination message carries the outputs."""
    if rayjob is None:
        return Observed(Phase.PENDING, "Creating", "creating children")
    status = rayjob.get("status") or {}
    job_status = status.get("jobStatus")
    deployment = status.get("jobDeploymentStatus")
    if job_status == "SUCCEEDED":
        outputs = outputs_from_pods(pods)
        if not outputs:  # the submitter pod has not been seen terminated yet: its change wakes us
            return Observed(Phase.RUNNING, "RayJobRunning", "ray job finished; reading its outputs",
                            start_time=status.get("startTime"))
        return Observed(Phase.SUCCEEDED, "RayJobSucceeded", status.get("message") or "finished",
                        outputs=outputs, completion_time=status.get("endTime"))
    if job_status in ("FAILED", "STOPPED") or deployment == "Failed":
        return Observed(Phase.FAILED, "RayJobFailed", status.get("message") or f"ray job {job_status or deployment}")
    if suspended or deployment == "Suspended":
        return Observed(Phase.SUSPENDED, "Suspended", "ray job is suspended")
    if job_status == "RUNNING":
        return Observed(Phase.RUNNING, "RayJobRunning", "ray job running", start_time=status.get("startTime"))
    return Observed(Phase.PENDING, "RayClusterStarting", deployment or "starting the Ray cluster")
