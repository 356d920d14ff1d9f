"""A local ModelServer's status from its fleet: the phases the operator reports and, while it
serves, the outputs downstream stages read (URL, model and the stable checkpoint, as in a cluster)."""

from __future__ import annotations

from pathlib import Path

from tanuki_operator.embedded.store import ObjectStore
from tanuki_operator.local_serving import LocalModelServer, as_status, write_status
from tanuki_serving.fleet import FleetStatus
from tanuki_serving.rollout import RevisionRef, RolloutState


def fleet(**changes: object) -> FleetStatus:
    base = {"serving": True, "failed": None, "message": "1/1 replicas ready", "replicas": 1,
            "url": "http://127.0.0.1:8080/v1", "model": "chat",
            "rollout": RolloutState(stable=RevisionRef(revision="abc", model="/data/ckpt/step_1"))}
    return FleetStatus(**{**base, **changes})


def test_a_serving_fleet_reports_url_model_and_stable_checkpoint() -> None:
    status = as_status(fleet())
    assert (status["phase"], status["reason"]) == ("Running", "Serving")
    assert status["outputs"] == {"url": "http://127.0.0.1:8080/v1", "model": "chat", "checkpoint": "/data/ckpt/step_1"}


def test_starting_and_failed_fleets_have_no_outputs() -> None:
    starting = as_status(fleet(serving=False, url=None, rollout=RolloutState()))
    assert starting["phase"] == "Pending" and "outputs" not in starting
    failed = as_status(fleet(serving=False, failed="revision abc failed 3 times"))
    assert (failed["phase"], failed["reason"]) == ("Failed", "ReplicaFailing") and "outputs" not in failed


def test_a_new_runner_keeps_the_rollout_history_an_earlier_one_recorded(tmp_path: Path) -> None:
    store = ObjectStore()
    for name in ("chat", "other"):
        store.apply({"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "ModelServer",
                     "metadata": {"name": name, "namespace": "local"}, "spec": {}})
    promoted = {"revision": "def", "model": "/data/dpo", "result": "Promoted", "reason": "healthy",
                "time": "2026-11-30T10:00:00Z"}
    write_status(store, "chat", {"phase": "Suspended", "rollout": {
        "stable": {"revision": "def", "model": "/data/dpo"}, "history": [promoted, {"result": "Exploded"}]}})
    server = LocalModelServer(tmp_path / "chain.yaml", "chat", tmp_path, store, lambda spec, _: spec)
    assert [record.model_dump() for record in server.fleet.state.history] == [promoted]
    assert server.fleet.state.stable is None  # what serves is decided anew: nothing runs yet
    fresh = LocalModelServer(tmp_path / "chain.yaml", "other", tmp_path, store, lambda spec, _: spec)
    assert fresh.fleet.state.history == []
