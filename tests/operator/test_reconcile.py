"""The reconciler against an in-memory API (no kopf): phases, lineage, suspend, adoption, crashes."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from fake_kube import Crash, FakeKube
from k8s_schemas import example_resources
from tanuki_operator.api import API_VERSION
from tanuki_operator.handlers.reconcile import cleanup, reconcile
from tanuki_operator.render import Settings

SETTINGS = Settings()
EXAMPLES = {r["metadata"]["name"]: r for r in example_resources()}


def apply(kube: FakeKube, name: str, **spec_changes: Any) -> dict[str, Any]:
    resource = copy.deepcopy(EXAMPLES[name])
    resource["spec"].update(spec_changes)
    resource["metadata"]["namespace"] = "ml"
    return kube.put(resource)


def step(kube: FakeKube, resource: dict[str, Any]) -> dict[str, Any]:
    """One reconcile, with its status written back like kopf's patch would."""
    meta = resource["metadata"]
    current = kube.objects[(API_VERSION, resource["kind"], meta["namespace"], meta["name"])]
    outcome = reconcile(kube, SETTINGS, resource["kind"], copy.deepcopy(current))
    current.setdefault("status", {}).update(outcome.status)
    return current["status"]


def finish_job(kube: FakeKube, name: str, outputs: dict[str, Any]) -> None:
    job = kube.objects[("batch/v1", "Job", "ml", name)]
    job["status"] = {"startTime": "2026-11-28T10:00:00Z", "completionTime": "2026-11-28T11:00:00Z",
                     "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{name}-0-abcde", "namespace": "ml", "uid": "pod-uid",
        "labels": job["spec"]["template"]["metadata"]["labels"]},
        "status": {"containerStatuses": [{"name": "main", "state": {"terminated": {
            "exitCode": 0, "message": json.dumps(outputs)}}}]}})


def test_create_then_complete_gives_succeeded_with_outputs() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    status = step(kube, resource)
    assert status["phase"] == "Pending"
    assert sorted(obj["kind"] for obj in kube.objects.values()) == ["ConfigMap", "Job", "PretrainJob", "Service"]
    job = kube.objects[("batch/v1", "Job", "ml", "debug-base")]
    assert job["metadata"]["ownerReferences"][0]["uid"] == resource["metadata"]["uid"]
    job["status"] = {"active": 1, "startTime": "2026-11-28T10:00:00Z"}
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "debug-base-0-abcde", "namespace": "ml", "labels": job["spec"]["template"]["metadata"]["labels"]}})
    kube.logs["ml", "debug-base-0-abcde"] = (
        '[tanuki progress] {"step": 30, "totalSteps": 150, "tokens": 61440, "loss": 5.5}\n'
        "[tanuki pretrain] step 30/150 loss 5.5\n"
        '[tanuki progress] {"step": 60, "totalSteps": 150, "tokens": 122880, "loss": 4.5}\n')
    status = step(kube, resource)
    assert status["phase"] == "Running"
    assert status["progress"] == {"step": 60, "totalSteps": 150, "tokens": 122880, "loss": 4.5,
                                  "summary": "40% (60/150)"}
    finish_job(kube, "debug-base", {"checkpoint": "/data/pretrainjob/debug-base/checkpoints/step_00000150"})
    status = step(kube, resource)
    assert status["phase"] == "Succeeded"
    assert status["outputs"]["checkpoint"].endswith("step_00000150")
    assert status["startTime"] == "2026-11-28T10:00:00Z" and status["completionTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Valid": "True", "Ready": "True"}
    calls = len(kube.calls)
    assert step(kube, resource)["phase"] == "Succeeded" and len(kube.calls) == calls  # terminal: no API calls


def test_lineage_waits_then_releases_with_the_upstream_checkpoint() -> None:
    kube = FakeKube()
    base = apply(kube, "debug-base")
    moe = apply(kube, "debug-moe")
    status = step(kube, moe)
    assert status["phase"] == "Waiting" and "PretrainJob/debug-base" in status["message"]
    assert kube.of_kind("Job") == []
    step(kube, base)
    finish_job(kube, "debug-base", {"checkpoint": "/data/pretrainjob/debug-base/checkpoints/step_00000150"})
    step(kube, base)
    assert step(kube, moe)["phase"] == "Pending"
    recipe = kube.objects[("v1", "ConfigMap", "ml", "debug-moe-recipe")]["data"]["recipe.yaml"]
    assert "source: /data/pretrainjob/debug-base/checkpoints/step_00000150" in recipe


def test_missing_or_failed_upstream_is_a_clear_condition() -> None:
    kube = FakeKube()
    moe = apply(kube, "debug-moe")
    status = step(kube, moe)
    assert status["phase"] == "Waiting" and "does not exist" in status["message"]
    base = apply(kube, "debug-base")
    base["status"] = {"phase": "Failed"}
    status = step(kube, moe)
    assert status["phase"] == "Waiting" and "PretrainJob/debug-base is Failed" in status["message"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "UpstreamUnavailable"


def test_invalid_spec_is_validation_failed_without_children() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base", nodes=0)
    status = step(kube, resource)
    assert status["phase"] == "ValidationFailed" and "spec.nodes" in status["message"]
    assert [obj["kind"] for obj in kube.objects.values()] == ["PretrainJob"]


def test_suspend_and_resume_patch_the_job() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    step(kube, resource)
    resource["spec"]["suspend"] = True
    assert step(kube, resource)["phase"] == "Suspended"
    assert kube.objects[("batch/v1", "Job", "ml", "debug-base")]["spec"]["suspend"] is True
    resource["spec"]["suspend"] = False
    step(kube, resource)
    assert kube.objects[("batch/v1", "Job", "ml", "debug-base")]["spec"]["suspend"] is False


def test_existing_child_without_owner_is_adopted() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    kube.put({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "debug-base", "namespace": "ml"},
              "spec": {"clusterIP": "None"}})
    step(kube, resource)
    service = kube.objects[("v1", "Service", "ml", "debug-base")]
    assert service["metadata"]["ownerReferences"][0]["uid"] == resource["metadata"]["uid"]


def test_cleanup_deletes_owned_children_only() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    step(kube, resource)
    assert cleanup(kube, "PretrainJob", resource) == 3
    assert [obj["kind"] for obj in kube.objects.values()] == ["PretrainJob"]


@pytest.mark.parametrize("seed", range(60))
def test_crash_anywhere_then_restart_converges_without_duplicates(seed: int) -> None:
    """Kill the reconciler at a seeded API call, restart it (fresh process state), repeat; the end
    state equals an uninterrupted run's and no child exists twice."""
    reference = FakeKube()
    resource = apply(reference, "tanuki-8b")
    upstream = apply(reference, "tanuki-synth")
    upstream["status"] = {"phase": "Succeeded", "outputs": {"dataset": "/data/synthjob/tanuki-synth/synth.jsonl"}}
    step(reference, resource)
    expected = sorted((k, n) for (_, k, _, n) in reference.objects)
    total_calls = len(reference.calls)

    rng = random.Random(seed)
    kube = FakeKube()
    resource = apply(kube, "tanuki-8b")
    upstream = apply(kube, "tanuki-synth")
    upstream["status"] = copy.deepcopy(reference.objects[(API_VERSION, "SynthJob", "ml", "tanuki-synth")]["status"])
    for _ in range(3):  # up to three crashes at random points, then a clean run
        kube.crash_at_call = len(kube.calls) + rng.randint(1, total_calls)
        try:
            step(kube, resource)
            break
        except Crash:
            continue
    kube.crash_at_call = None
    status = step(kube, resource)
    assert sorted((k, n) for (_, k, _, n) in kube.objects) == expected
    creates = [call for call in kube.calls if call[0] == "create"]
    # only the three children are ever created; a retried create of an existing name is a 409
    assert {(k, n) for _, k, n in creates} == {("ConfigMap", "tanuki-8b-recipe"), ("Service", "tanuki-8b"),
                                                ("Job", "tanuki-8b")}
    assert status["phase"] == "Pending" and status["message"].startswith("waiting for Kueue")
