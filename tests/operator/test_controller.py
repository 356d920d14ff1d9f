"""The control loop without kopf: the work queue, which events wake which resource, lineage wake-ups."""

from __future__ import annotations

import copy
import threading
import time

from fake_kube import FakeKube

from k8s_schemas import example_resources
from tanuki_operator.api import API_VERSION
from tanuki_operator.handlers.controller import Controller, WorkQueue
from tanuki_operator.render import Settings

EXAMPLES = {r["metadata"]["name"]: r for r in example_resources()}
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
