"""The control loop without kopf: the work queue, which events wake which resource, lineage wake-ups."""

from __future__ import annotations

import copy
import threading
import time

from fake_kube import FakeKube

from k8s_schemas import runnable_examples
from tanuki_operator.api import API_VERSION
from tanuki_operator.handlers.controller import Controller, RetryLimiter, WorkQueue
from tanuki_operator.k8s import ApiError
from tanuki_operator.render import Settings

EXAMPLES = {r["metadata"]["name"]: r for r in runnable_examples()}
A, B = ("PretrainJob", "ml", "a"), ("UpcycleJob", "ml", "b")


def test_queue_hands_each_key_once_in_due_order_and_reruns_a_key_added_while_busy() -> None:
    queue = WorkQueue()
    queue.add(B, after=0.05)
    queue.add(A)
    queue.add(A)  # deduplicated
    assert len(queue) == 2
    assert queue.get(timeout=1) == A
    queue.add(A)  # arrives while A is being reconciled: not handed to a second worker ...
    assert queue.get(timeout=0.01) is None
    assert queue.get(timeout=1) == B
    queue.done(B)
    queue.done(A)  # ... but runs again once the first reconcile is done
    assert queue.get(timeout=1) == A
    queue.add(B, after=60)
    queue.add(B, after=0)  # an earlier due time wins
    assert queue.get(timeout=1) == B
    closer = threading.Timer(0.05, queue.close)
    closer.start()
    assert queue.get() is None  # closing releases the workers


def body(name: str, kind: str = "PretrainJob", generation: int = 1, phase: str | None = None) -> dict:
    return {"kind": kind, "metadata": {"name": name, "namespace": "ml", "uid": f"uid-{name}", "generation": generation},
            "status": {"phase": phase} if phase else {}}


def child(uid: str, status: dict | None) -> dict:
    return {"kind": "Job", "metadata": {"uid": uid, "namespace": "ml", "labels": {
        "llm.tanuki.dev/kind": "pretrainjob", "llm.tanuki.dev/name": "a"}}, "status": status}


def drain(queue: WorkQueue) -> list:
    keys = []
    while (key := queue.get(timeout=0.01)) is not None:
        keys.append(key)
        queue.done(key)
    return keys


def test_spec_changes_wake_a_resource_and_its_own_status_writes_do_not() -> None:
    controller = Controller(FakeKube(), Settings())
    controller.resource_event("PretrainJob", None, body("a"))  # the startup listing
    assert drain(controller.queue) == [A]
    controller.resource_event("PretrainJob", "MODIFIED", body("a", phase="Pending"))  # our status write
    assert drain(controller.queue) == []
    controller.resource_event("PretrainJob", "MODIFIED", body("a", generation=2, phase="Pending"))  # kubectl apply
    assert drain(controller.queue) == [A]


def test_child_status_changes_and_deletions_wake_the_owner_creations_and_listings_do_not() -> None:
    controller = Controller(FakeKube(), Settings())
    controller.child_event(None, child("job", None))  # listing at startup
    controller.child_event("ADDED", child("job2", None))  # a child the operator just created
    assert drain(controller.queue) == []
    controller.child_event("MODIFIED", child("job", {"active": 1}))
    assert drain(controller.queue) == [A]
    controller.child_event("MODIFIED", child("job", {"active": 1}))  # e.g. a label change: status unchanged
    assert drain(controller.queue) == []
    controller.child_event("DELETED", child("job", {"active": 1}))
    assert drain(controller.queue) == [A]
    unrelated = child("x", {"a": 1})
    unrelated["metadata"]["labels"] = {}
    controller.child_event("MODIFIED", unrelated)
    assert drain(controller.queue) == []


def test_an_upstream_phase_change_wakes_its_dependents() -> None:
    kube = FakeKube()
    for name in ("debug-late", "debug-moe"):
        resource = copy.deepcopy(EXAMPLES[name])
        resource["metadata"]["namespace"] = "ml"
        kube.put(resource)
    controller = Controller(kube, Settings())
    moe = ("UpcycleJob", "ml", "debug-moe")
    outcome = controller.reconcile_key(moe)
    assert outcome.status["phase"] == "Waiting"
    stored = kube.objects[(API_VERSION, "UpcycleJob", "ml", "debug-moe")]["status"]
    assert stored["phase"] == "Waiting"  # the controller wrote the status
    upstream = body("debug-late", phase="Running")
    controller.resource_event("PretrainJob", None, upstream)
    drain(controller.queue)
    controller.resource_event("PretrainJob", "MODIFIED", body("debug-late", phase="Succeeded"))
    assert moe in drain(controller.queue)


def test_a_servers_rollout_settling_wakes_its_consumers_without_a_phase_change() -> None:
    """An EvalJob waits for its ModelServer to serve what its spec asks (no canary in flight): the
    canary's promotion leaves the server Running, and still wakes the EvalJob."""
    kube = FakeKube()
    for name in ("debug-judge", "debug-chat", "debug-eval"):
        resource = copy.deepcopy(EXAMPLES[name])
        resource["metadata"]["namespace"] = "ml"
        kube.put(resource)
    controller = Controller(kube, Settings(), kinds={"EvalJob"})
    evaljob = ("EvalJob", "ml", "debug-eval")
    assert controller.reconcile_key(evaljob).status["phase"] == "Waiting"
    canary = {"stable": {"revision": "a", "model": "/data/sft"}, "canary": {"revision": "b", "model": "/data/dpo"}}
    rolling = body("debug-chat", kind="ModelServer", phase="Running")
    rolling["status"]["rollout"] = canary
    controller.resource_event("ModelServer", None, rolling)
    drain(controller.queue)
    controller.resource_event("ModelServer", "MODIFIED", rolling)  # nothing changed: nobody woken
    assert drain(controller.queue) == []
    promoted = body("debug-chat", kind="ModelServer", phase="Running")
    promoted["status"]["rollout"] = {"stable": canary["canary"]}
    controller.resource_event("ModelServer", "MODIFIED", promoted)
    assert drain(controller.queue) == [evaljob]  # the ModelServer itself is not reconciled here (kinds)


def test_workers_reconcile_and_requeue_a_running_stage() -> None:
    kube = FakeKube()
    resource = copy.deepcopy(EXAMPLES["debug-base"])
    resource["metadata"]["namespace"] = "ml"
    kube.put(resource)
    events = []
    controller = Controller(kube, Settings(), workers=2, emit=lambda body, *event: events.append(event))
    controller.start()
    try:
        controller.queue.add(("PretrainJob", "ml", "debug-base"))
        deadline = time.monotonic() + 5
        while ("batch/v1", "Job", "ml", "debug-base") not in kube.objects and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ("batch/v1", "Job", "ml", "debug-base") in kube.objects
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert events[0][:2] == ("Normal", "Pending")
    finally:
        controller.stop()


def test_through_the_read_cache_a_deleted_child_is_still_restored_and_a_converged_one_not_rewritten() -> None:
    kube = FakeKube()
    resource = copy.deepcopy(EXAMPLES["debug-base"])
    resource["metadata"]["namespace"] = "ml"
    kube.put(resource)
    controller = Controller(kube, Settings(), watched_children={("batch/v1", "Job")})
    key = ("PretrainJob", "ml", "debug-base")
    controller.reconcile_key(key)
    job = kube.objects[("batch/v1", "Job", "ml", "debug-base")]
    controller.child_event("ADDED", job)  # the watch delivers the Job: it is read from the cache now
    kube.objects.pop(("v1", "ConfigMap", "ml", "debug-base-recipe"))  # deleted by hand (not watched)
    mark = len(kube.calls)
    controller.reconcile_key(key)
    assert ("apply", "ConfigMap", "debug-base-recipe") in kube.writes(mark)
    assert ("get", "Job", "debug-base") not in kube.calls[mark:]  # served from the cache
    mark = len(kube.calls)
    controller.reconcile_key(key)
    assert kube.writes(mark) == []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failing_key_backs_off_exponentially_up_to_the_cap_and_starts_over_after_a_success() -> None:
    limiter = RetryLimiter(base=1.0, cap=60.0, rate=1000.0, burst=1000, clock=Clock())
    assert [limiter.when(A) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert limiter.when(B) == 1  # per key
    limiter.forget(A)
    assert limiter.failures(A) == 0 and limiter.when(A) == 1


def test_retries_of_many_keys_together_pass_through_the_token_bucket() -> None:
    clock = Clock()
    limiter = RetryLimiter(base=0.001, cap=1.0, rate=2.0, burst=3, clock=clock)
    keys = [("PretrainJob", "ml", f"r{i}") for i in range(6)]
    waits = [limiter.when(key) for key in keys]  # all at once: the burst goes now, the rest at 2/s
    assert waits[:3] == [0.001] * 3
    assert waits[3:] == [0.5, 1.0, 1.5]
    clock.now += 10  # the bucket refills (to its burst, no more)
    assert [limiter.when(("SFTJob", "ml", f"s{i}")) for i in range(4)] == [0.001, 0.001, 0.001, 0.5]


class RefusingKube(FakeKube):
    """An API server that refuses every read with 503 until ``healthy`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.healthy = False

    def get(self, api_version, kind, namespace, name):
        if not self.healthy:
            self._tick("get", kind, name)
            raise ApiError(503, "Service Unavailable")
        return super().get(api_version, kind, namespace, name)


def test_an_unavailable_api_is_retried_later_each_time_and_a_success_resets_the_backoff() -> None:
    kube = RefusingKube()
    resource = copy.deepcopy(EXAMPLES["debug-base"])
    resource["metadata"]["namespace"] = "ml"
    kube.put(resource)
    controller = Controller(kube, Settings())
    key = ("PretrainJob", "ml", "debug-base")
    due = []
    for _ in range(4):
        started = time.monotonic()
        assert controller.reconcile_key(key) is None
        due.append(controller.queue._due[key] - started)
        controller.queue.forget(key)
    assert [round(d) for d in due] == [1, 2, 4, 8]
    kube.healthy = True
    assert controller.reconcile_key(key) is not None
    assert controller.retries.failures(key) == 0
