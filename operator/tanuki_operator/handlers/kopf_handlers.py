"""kopf handlers: thin wrappers that hand each resource to ``reconcile`` and write its status.

Every kind shares one reconciler (validate → lineage → render → create/adopt → status); the
per-kind differences live in api/, render/ and phases.py.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import kopf

from tanuki_operator import metrics
from tanuki_operator.api import GROUP, KINDS, VERSION
from tanuki_operator.handlers.reconcile import TERMINAL, cleanup, reconcile
from tanuki_operator.k8s import ApiError, Kube
from tanuki_operator.render import Settings

POLL_SECONDS = float(os.environ.get("TANUKI_POLL_SECONDS", "10"))
_state: dict[str, Any] = {}
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _kube() -> Kube:
    if "kube" not in _state:
        _state["kube"] = Kube()
    return _state["kube"]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Handler progress in annotations: our CRDs' status schema has no room for kopf's own field.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="llm.tanuki.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="llm.tanuki.dev")
    settings.posting.level = 20  # INFO and above become Kubernetes Events
    # A polling timer caught mid-reconcile when its resource is deleted holds the finalizer until
    # kopf checks again: check after a short wait instead of kopf's default minute.
    settings.background.instant_exit_timeout = 0.5
    settings.background.cancellation_polling = 2
    _state["settings"] = Settings.from_env()
    _state.pop("kube", None)  # a fresh client per operator start (its kubeconfig may have changed)
    port = int(os.environ.get("TANUKI_METRICS_PORT", "0") or 0)
    if port:
        metrics.serve(port)


def _lock(uid: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(uid, threading.Lock())


def _reconcile(kind: str, body: kopf.Body, patch: kopf.Patch, logger: Any) -> None:
    """Change handlers and the polling timer may fire together: one reconcile per object at a time."""
    started = time.perf_counter()
    try:
        with _lock(body.metadata.uid):
            outcome = reconcile(_kube(), _state.get("settings") or Settings.from_env(), kind, dict(body))
    except ApiError as exc:
        metrics.ERRORS.labels(kind).inc()
        if exc.transient:
            raise kopf.TemporaryError(f"Kubernetes API: {exc}", delay=5) from None
        raise kopf.PermanentError(f"Kubernetes API: {exc}") from None
    finally:
        metrics.LATENCY.labels(kind).observe(time.perf_counter() - started)
    metrics.RECONCILES.labels(kind, "changed" if outcome.status else "unchanged").inc()
    if outcome.status:
        patch.status.update(outcome.status)
        metrics.record_phase(kind, body.metadata.namespace, body.metadata.name, outcome.status["phase"])
        if "rollout" in outcome.status:
            metrics.record_rollout(body.metadata.namespace, body.metadata.name, (body.status or {}).get("rollout"),
                                   outcome.status["rollout"], outcome.status["rollout"].get("readyReplicas") or {})
    if outcome.event:
        event_type, reason, message = outcome.event
        (kopf.warn if event_type == "Warning" else kopf.info)(dict(body), reason=reason, message=message)
        logger.info(f"{kind} {body.metadata.name}: {reason}: {message}")


def _register(kind: str, plural: str) -> None:
    def on_change(body: kopf.Body, patch: kopf.Patch, logger: Any, **_: Any) -> None:
        _reconcile(kind, body, patch, logger)

    def on_tick(body: kopf.Body, patch: kopf.Patch, logger: Any, **_: Any) -> None:
        if body.metadata.get("deletionTimestamp"):
            return
        status = body.get("status") or {}
        if status.get("phase") in TERMINAL and status.get("observedGeneration") == body.metadata.get("generation"):
            return
        _reconcile(kind, body, patch, logger)

    def on_delete(body: kopf.Body, logger: Any, **_: Any) -> None:
        try:
            deleted = cleanup(_kube(), kind, dict(body))
        except ApiError as exc:
            raise kopf.TemporaryError(f"deleting children: {exc}", delay=5) from None
        metrics.record_phase(kind, body.metadata.namespace, body.metadata.name, None)
        with _locks_guard:
            _locks.pop(body.metadata.uid, None)
        logger.info(f"{kind} {body.metadata.name}: deleted {deleted} children")

    kopf.on.create(GROUP, VERSION, plural, id=f"create-{plural}")(on_change)
    kopf.on.resume(GROUP, VERSION, plural, id=f"resume-{plural}")(on_change)
    kopf.on.update(GROUP, VERSION, plural, field="spec", id=f"update-{plural}")(on_change)
    kopf.timer(GROUP, VERSION, plural, interval=POLL_SECONDS, id=f"poll-{plural}")(on_tick)
    kopf.on.delete(GROUP, VERSION, plural, id=f"cleanup-{plural}")(on_delete)


for _info in KINDS.values():
    _register(_info.kind, _info.plural)
