"""The operator's control loop: events only enqueue keys; worker threads reconcile one key at a time.

A key is (kind, namespace, name). It is enqueued when the resource's spec changes (or it is seen
for the first time), when one of its children changes (a Job's or a Deployment's status, a pod,
a deletion), when an upstream it reads from changes phase, when its last reconcile asked to look
again after some seconds (progress in logs, a rollout pause), and by a slow resync as a safety
net. A key enqueued again while it is being reconciled runs once more afterwards; a key is never
reconciled by two workers at once. A reconcile that fails (the API refuses, a bug raises) is
retried after a per-key exponential backoff, and retries of all keys together pass through a token
bucket, so an API server that is down is not hammered (client-go's default controller rate limiter).
No kopf here: ``kopf_handlers`` feeds it events.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from tanuki_operator import metrics
from tanuki_operator.api import API_VERSION
from tanuki_operator.api.common import Phase, Status
from tanuki_operator.handlers.cache import CachedKube
from tanuki_operator.handlers.reconcile import Outcome, finished, reconcile
from tanuki_operator.k8s import ApiError, KubeApi
from tanuki_operator.lineage import settling
from tanuki_operator.render.common import Settings
from tanuki_operator.stages import STAGES
from tanuki_serving.rollout import RolloutState

log = logging.getLogger("tanuki.controller")
Key = tuple[str, str, str]
"""(kind, namespace, name) of a tanuki resource."""
KIND_OF_LABEL = {stage.kind.lower(): stage.kind for stage in STAGES.values()}


class WorkQueue:
    """Keys due now or later, each queued at most once, never handed to two workers at once."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._busy: set[Key] = set()
        self._again: dict[Key, float] = {}
        self._order = itertools.count()
        self._closed = False

    def add(self, key: Key, after: float = 0.0) -> None:
        """Reconcile ``key`` in ``after`` seconds (sooner if it is already due sooner)."""
        due = time.monotonic() + max(after, 0.0)
        with self._lock:
            if key in self._busy:
                self._again[key] = min(due, self._again.get(key, due))
                return
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._order), key))
            self._lock.notify()

    def get(self, timeout: float | None = None) -> Key | None:
        """The next due key (marked busy until ``done``), or None when closed or out of time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._closed:
                while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                    heapq.heappop(self._heap)  # superseded by an earlier due time
                now = time.monotonic()
                if self._heap and self._heap[0][0] <= now:
                    _, _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    self._busy.add(key)
                    return key
                wait = self._heap[0][0] - now if self._heap else None
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._lock.wait(wait)
            return None

    def done(self, key: Key) -> None:
        with self._lock:
            self._busy.discard(key)
            if key in self._again:
                due = self._again.pop(key)
                self._due[key] = due
                heapq.heappush(self._heap, (due, next(self._order), key))
                self._lock.notify()

    def forget(self, key: Key) -> None:
        with self._lock:
            self._due.pop(key, None)
            self._again.pop(key, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def idle(self) -> bool:
        """No key due (now or later) and none handed out."""
        with self._lock:
            return not self._due and not self._busy

    def __len__(self) -> int:
        with self._lock:
            return len(self._due)


class RetryLimiter:
    """When to retry a key whose reconcile failed: ``base × 2^(failures − 1)`` seconds, at most ``cap``
    (per key, reset by ``forget`` after a success), and never sooner than an overall token bucket
    (``rate`` retries per second, ``burst`` at once) allows. The clock is injectable for tests."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, rate: float = 10.0, burst: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base, self.cap, self.rate, self.burst = base, cap, rate, burst
        self._clock = clock
        self._failures: dict[Key, int] = {}
        self._tokens = float(burst)
        self._refilled = clock()
        self._lock = threading.Lock()

    def when(self, key: Key) -> float:
        """Seconds until ``key`` may be retried; counts one more failure of it."""
        with self._lock:
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            backoff: float = min(self.base * 2.0 ** min(failures - 1, 62), self.cap)
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            self._tokens -= 1  # taken now, possibly on credit: a negative balance is a wait
            bucket = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
            return max(backoff, bucket)

    def failures(self, key: Key) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: Key) -> None:
        """``key`` reconciled: its next failure starts from ``base`` again."""
        with self._lock:
            self._failures.pop(key, None)


@dataclass
class Seen:
    """What the controller last saw of a resource: enough to tell spec changes from our own status writes."""

    generation: int | None = None
    phase: str | None = None
    settling: str | None = None
    """Why it is not ready for its consumers although in its ready phase (a rollout in flight)."""
    upstreams: set[Key] = field(default_factory=set)


class Controller:
    def __init__(self, kube: KubeApi, settings: Settings, workers: int = 4, resync_seconds: float = 300.0,
                 emit: Callable[[dict[str, Any], str, str, str], None] | None = None,
                 watched_children: Collection[tuple[str, str]] = frozenset(),
                 kinds: Collection[str] | None = None) -> None:
        self.kinds = set(STAGES if kinds is None else kinds)
        """The kinds it reconciles; changes of the others only wake the resources that read from them."""
        watched = {(API_VERSION, kind) for kind in STAGES} | set(watched_children)
        self.kube = CachedKube(kube, watched)
        """Reads of watched objects come from what the watches delivered (see ``cache``)."""
        self.settings = settings
        self.queue = WorkQueue()
        self.retries = RetryLimiter()
        self.workers = workers
        self.resync_seconds = resync_seconds
        self.emit = emit or self._post_event
        self._seen: dict[Key, Seen] = {}
        self._dependents: dict[Key, set[Key]] = {}
        self._children: dict[str, str] = {}
        """child uid → digest of its status (and deletion): only real changes wake the owner."""
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # ---- events in ------------------------------------------------------------------------------

    def resource_event(self, kind: str, event_type: str | None, body: dict[str, Any]) -> None:
        """A tanuki resource was listed, added, modified or deleted."""
        meta = body.get("metadata") or {}
        key = (kind, meta.get("namespace") or "", meta.get("name") or "")
        status = body.get("status") or {}
        self.kube.observe(event_type, body)
        with self._lock:
            if event_type == "DELETED":
                self._seen.pop(key, None)
                wake = set(self._dependents.get(key, ()))
            else:
                seen = self._seen.setdefault(key, Seen())
                spec_changed = seen.generation != meta.get("generation")
                settle = settling(kind, status) if status.get("phase") else None
                # a consumer waits on an upstream's phase, and on a server's rollout settling in it
                phase_changed = (seen.phase, seen.settling) != (status.get("phase"), settle)
                seen.generation, seen.phase, seen.settling = meta.get("generation"), status.get("phase"), settle
                wake = set(self._dependents.get(key, ())) if phase_changed or event_type == "ADDED" else set()
                if spec_changed and not meta.get("deletionTimestamp") and kind in self.kinds:
                    wake.add(key)
        if event_type == "DELETED":
            self.queue.forget(key)
            metrics.record_phase(kind, key[1], key[2], None)
        for other in wake:
            self.queue.add(other)

    def child_event(self, event_type: str | None, body: dict[str, Any]) -> None:
        """A child (Job, RayJob, Deployment, Pod, ...) changed: wake its owner if its status did."""
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        kind = KIND_OF_LABEL.get(labels.get("llm.tanuki.dev/kind", ""))
        name = labels.get("llm.tanuki.dev/name")
        if kind is None or not name:
            return
        self.kube.observe(event_type, body)
        uid = meta.get("uid", "")
        digest = "deleted" if event_type == "DELETED" else repr((body.get("status"), meta.get("deletionTimestamp")))
        with self._lock:
            before = self._children.get(uid)
            if event_type == "DELETED":
                self._children.pop(uid, None)
            else:
                self._children[uid] = digest
        if before == digest or event_type in (None, "ADDED"):  # unchanged, the startup listing, or just created
            return
        self.queue.add((kind, meta.get("namespace") or "", name))

    # ---- workers --------------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"tanuki-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        resync = threading.Thread(target=self._resync, name="tanuki-resync", daemon=True)
        resync.start()
        self._threads.append(resync)

    def idle(self) -> bool:
        """Nothing queued and nothing being reconciled."""
        return self.queue.idle()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.queue.close()
        for thread in self._threads:
            thread.join(timeout)

    def _resync(self) -> None:
        """Safety net: every unfinished resource is looked at again now and then, events or not."""
        while not self._stop.wait(self.resync_seconds):
            with self._lock:
                keys = [key for key, seen in self._seen.items()
                        if key[0] in self.kinds and not ((phase := Phase.of(seen.phase)) and phase.terminal)]
            for key in keys:
                self.queue.add(key)

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self.reconcile_key(key)
            except Exception:  # a worker never dies: log, back off, try again
                log.exception("reconciling %s/%s/%s", *key)
                self.queue.done(key)
                self.queue.add(key, after=self.retries.when(key))
                continue
            self.queue.done(key)

    def reconcile_key(self, key: Key) -> Outcome | None:
        """One reconcile of one resource, with its status written and its next look scheduled."""
        kind, namespace, name = key
        started = time.perf_counter()
        try:
            body = self.kube.get(API_VERSION, kind, namespace, name)
            if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
                self.retries.forget(key)
                return None
            outcome = reconcile(self.kube, self.settings, kind, body)
            self._remember_upstreams(key, outcome)
            if outcome.status:
                self.kube.patch_status(API_VERSION, kind, namespace, name, outcome.status)
                metrics.record_phase(kind, namespace, name, outcome.status["phase"])
                if "rollout" in outcome.status:
                    metrics.record_rollout(namespace, name, RolloutState.of(body.get("status")),
                                           RolloutState.of(outcome.status))
            for event_type, reason, message in outcome.events:
                self.emit(body, event_type, reason, message)
                log.info("%s %s/%s: %s: %s", kind, namespace, name, reason, message)
        except ApiError as exc:
            metrics.ERRORS.labels(kind).inc()
            retry = self.retries.when(key)
            log.warning("%s %s/%s: Kubernetes API: %s (retry %d in %.1f s)", kind, namespace, name, exc,
                        self.retries.failures(key), retry)
            self.queue.add(key, after=retry)
            return None
        finally:
            metrics.LATENCY.labels(kind).observe(time.perf_counter() - started)
        self.retries.forget(key)
        metrics.RECONCILES.labels(kind, "changed" if outcome.status or outcome.changed else "unchanged").inc()
        status = Status.model_validate({**(body.get("status") or {}), **outcome.status})
        if outcome.requeue_after is not None and not finished(status, body["metadata"].get("generation")):
            self.queue.add(key, after=outcome.requeue_after)
        return outcome

    def _remember_upstreams(self, key: Key, outcome: Outcome) -> None:
        upstreams: set[Key] = {(ref.kind, key[1], ref.name) for ref in outcome.upstreams}
        with self._lock:
            seen = self._seen.setdefault(key, Seen())
            for gone in seen.upstreams - upstreams:
                self._dependents.get(gone, set()).discard(key)
            for upstream in upstreams:
                self._dependents.setdefault(upstream, set()).add(key)
            seen.upstreams = upstreams

    def _post_event(self, body: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event on the resource (what `kubectl describe` shows)."""
        meta = body["metadata"]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            self.kube.create({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
                "involvedObject": {"apiVersion": body.get("apiVersion", API_VERSION), "kind": body.get("kind"),
                                   "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
                "type": event_type, "reason": reason, "message": message[:1024],
                "source": {"component": "tanuki-operator"}, "reportingComponent": "tanuki-operator",
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            })
        except ApiError as exc:  # an Event is best effort
            log.warning("posting event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc)
