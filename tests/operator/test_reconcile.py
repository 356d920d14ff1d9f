"""The reconciler against an in-memory API (no kopf): phases, lineage, suspend, adoption, crashes,
convergence of hand-edited or deleted children, refused edits of a running stage, stages that
are not available."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest
from fake_kube import Crash, FakeKube

from k8s_schemas import runnable_examples
from tanuki_operator.api import API_VERSION
from tanuki_operator.handlers.reconcile import reconcile
from tanuki_operator.render import Settings

SETTINGS = Settings()
EXAMPLES = {r["metadata"]["name"]: r for r in runnable_examples()}
FROM_BASE = {"from": {"kind": "PretrainJob", "name": "debug-base"}}
"""debug-moe upcycles debug-late in the chain; these tests give it the first stage as upstream."""


def apply(kube: FakeKube, name: str, **spec_changes: Any) -> dict[str, Any]:
    resource = copy.deepcopy(EXAMPLES[name])
    resource["spec"].update(spec_changes)
    resource["metadata"]["namespace"] = "ml"
    return kube.put(resource)


def reconcile_once(kube: FakeKube, resource: dict[str, Any]):
    """One reconcile, with its status written back as the controller does (a merge patch)."""
    meta = resource["metadata"]
    current = kube.objects[(API_VERSION, resource["kind"], meta["namespace"], meta["name"])]
    outcome = reconcile(kube, SETTINGS, resource["kind"], copy.deepcopy(current))
    if outcome.status:
        kube.patch_status(API_VERSION, resource["kind"], meta["namespace"], meta["name"], outcome.status)
    return outcome


def step(kube: FakeKube, resource: dict[str, Any]) -> dict[str, Any]:
    reconcile_once(kube, resource)
    meta = resource["metadata"]
    return kube.objects[(API_VERSION, resource["kind"], meta["namespace"], meta["name"])]["status"]


def edit(kube: FakeKube, resource: dict[str, Any], **spec_changes: Any) -> None:
    """kubectl apply of an edited spec: the API server bumps the generation."""
    meta = resource["metadata"]
    current = kube.objects[(API_VERSION, resource["kind"], meta["namespace"], meta["name"])]
    current["spec"].update(copy.deepcopy(spec_changes))
    current["metadata"]["generation"] += 1


def finish_job(kube: FakeKube, name: str, outputs: dict[str, Any]) -> None:
    job = kube.objects[("batch/v1", "Job", "ml", name)]
    job["status"] = {"startTime": "2026-11-28T10:00:00Z", "completionTime": "2026-11-28T11:00:00Z",
                     "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{name}-0-abcde", "namespace": "ml", "uid": "pod-uid",
        "labels": job["spec"]["template"]["metadata"]["labels"]},
        "status": {"containerStatuses": [{"name": "main", "state": {"terminated": {
            "exitCode": 0, "message": json.dumps(outputs)}}}]}})


def test_an_active_job_whose_pod_cannot_start_is_pending_with_the_pods_reason() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    step(kube, resource)
    job = kube.objects[("batch/v1", "Job", "ml", "debug-base")]
    job["status"] = {"active": 1, "startTime": "2026-11-28T10:00:00Z"}
    pod = kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "debug-base-0-abcde", "namespace": "ml", "labels": job["spec"]["template"]["metadata"]["labels"]},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "main", "state": {"waiting": {
            "reason": "CreateContainerConfigError", "message": 'secret "judge-key" not found'}}}]}})
    status = step(kube, resource)
    assert (status["phase"], status["message"]) == (
        "Pending", 'pod debug-base-0-abcde: CreateContainerConfigError: secret "judge-key" not found')
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "PodFailing"
    pod["status"] = {"phase": "Running", "containerStatuses": [{"name": "main", "state": {"running": {}}}]}
    assert step(kube, resource)["phase"] == "Running"  # the Secret appeared: the pod started


def test_create_then_complete_gives_succeeded_with_outputs() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    status = step(kube, resource)
    assert status["phase"] == "Pending"
    assert sorted(obj["kind"] for obj in kube.objects.values()) == [
        "ConfigMap", "Job", "NetworkPolicy", "PretrainJob", "Service"]
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
    assert status["runGeneration"] == 1
    calls = len(kube.calls)
    assert step(kube, resource)["phase"] == "Succeeded" and len(kube.calls) == calls  # terminal: no API calls


def test_a_rayjob_stage_publishes_what_its_submitter_pod_read_from_the_volume() -> None:
    """KubeRay's RayJob status has no place for outputs: the submitter pod we give it reports the
    stage's outputs.json as its termination message, like every other stage's pod."""
    kube = FakeKube()
    resource = apply(kube, "tanuki-corpus", sourcesFrom=[])
    resource["spec"]["recipe"]["sources"] = resource["spec"]["recipe"]["sources"][:2]
    kube.objects[(API_VERSION, "TokenizeJob", "ml", "tanuki-corpus")]["spec"] = resource["spec"]
    assert step(kube, resource)["phase"] == "Pending"
    rayjob = kube.objects[("ray.io/v1", "RayJob", "ml", "tanuki-corpus")]
    submitter = rayjob["spec"]["submitterPodTemplate"]
    assert "tanuki_pipelines.outputs --message-from /data/tokenizejob/tanuki-corpus" in \
        submitter["spec"]["containers"][0]["command"][-1]
    rayjob["status"] = {"jobStatus": "RUNNING", "jobDeploymentStatus": "Running", "startTime": "2026-12-03T10:00:00Z"}
    assert step(kube, resource)["phase"] == "Running"
    rayjob["status"] = {**rayjob["status"], "jobStatus": "SUCCEEDED", "jobDeploymentStatus": "Complete",
                        "endTime": "2026-12-03T11:00:00Z"}
    status = step(kube, resource)  # the submitter pod is not seen terminated yet
    assert status["phase"] == "Running" and "outputs" not in status
    outputs = {"tokens": "/data/tokenizejob/tanuki-corpus", "tokenizer": "/data/tokenizejob/tanuki-corpus/tokenizer"}
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "tanuki-corpus-submitter-x1", "namespace": "ml", "labels": submitter["metadata"]["labels"]},
        "status": {"containerStatuses": [{"name": "submitter", "state": {"terminated": {
            "exitCode": 0, "message": json.dumps(outputs)}}}]}})
    status = step(kube, resource)
    assert status["phase"] == "Succeeded" and status["outputs"] == outputs


def test_a_rayjob_whose_head_cannot_start_is_pending_with_the_pods_reason() -> None:
    kube = FakeKube()
    resource = apply(kube, "tanuki-corpus", sourcesFrom=[])
    resource["spec"]["recipe"]["sources"] = resource["spec"]["recipe"]["sources"][:2]
    kube.objects[(API_VERSION, "TokenizeJob", "ml", "tanuki-corpus")]["spec"] = resource["spec"]
    step(kube, resource)
    rayjob = kube.objects[("ray.io/v1", "RayJob", "ml", "tanuki-corpus")]
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "tanuki-corpus-head-x1", "namespace": "ml", "labels": head["metadata"]["labels"]},
        "status": {"containerStatuses": [{"name": "ray-head", "restartCount": 0, "state": {"waiting": {
            "reason": "CreateContainerConfigError", "message": 'secret "hf-token" not found'}}}]}})
    status = step(kube, resource)
    assert status["phase"] == "Pending"
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "PodFailing"
    assert "tanuki-corpus-head-x1: CreateContainerConfigError" in status["message"]


def test_lineage_waits_then_releases_with_the_upstream_checkpoint() -> None:
    kube = FakeKube()
    base = apply(kube, "debug-base")
    moe = apply(kube, "debug-moe", model=FROM_BASE)
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
    moe = apply(kube, "debug-moe", model=FROM_BASE)
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


def test_a_child_deleted_or_edited_by_hand_is_restored_and_others_fields_are_kept() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    step(kube, resource)
    kube.objects.pop(("v1", "Service", "ml", "debug-base"))
    recipe = kube.objects[("v1", "ConfigMap", "ml", "debug-base-recipe")]
    recipe["data"]["recipe.yaml"] = "tampered"
    recipe["metadata"]["labels"]["team"] = "nlp"  # someone else's label
    mark = len(kube.calls)
    step(kube, resource)
    assert sorted(kube.writes(mark)) == [("apply", "ConfigMap", "debug-base-recipe"), ("apply", "Service", "debug-base")]
    restored = kube.objects[("v1", "ConfigMap", "ml", "debug-base-recipe")]
    assert restored["data"]["recipe.yaml"].startswith("tokenizer:")
    assert restored["metadata"]["labels"]["team"] == "nlp"
    assert ("v1", "Service", "ml", "debug-base") in kube.objects
    mark = len(kube.calls)
    step(kube, resource)
    assert kube.writes(mark) == []  # converged: a periodic reconcile writes nothing


def test_editing_a_running_stage_is_refused_naming_the_field_and_children_stay() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    step(kube, resource)
    job_before = copy.deepcopy(kube.objects[("batch/v1", "Job", "ml", "debug-base")])
    recipe_before = copy.deepcopy(kube.objects[("v1", "ConfigMap", "ml", "debug-base-recipe")])
    changed = copy.deepcopy(resource["spec"]["recipe"])
    changed["train"]["steps"] = 300
    edit(kube, resource, recipe=changed, resources={"cpu": "3", "memory": "8Gi"})
    mark = len(kube.calls)
    outcome = reconcile_once(kube, resource)
    status = kube.objects[(API_VERSION, "PretrainJob", "ml", "debug-base")]["status"]
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "ImmutableFieldChanged")
    assert "spec.recipe.train.steps" in valid["message"] and "spec.resources.cpu" in valid["message"]
    assert status["phase"] == "Pending" and status["runGeneration"] == 1 and status["observedGeneration"] == 2
    assert outcome.events[-1][:2] == ("Warning", "ImmutableFieldChanged")
    assert [w for w in kube.writes(mark) if w[0] != "status"] == []
    assert kube.objects[("batch/v1", "Job", "ml", "debug-base")] == job_before
    assert kube.objects[("v1", "ConfigMap", "ml", "debug-base-recipe")] == recipe_before
    edit(kube, resource, suspend=True)  # suspend stays mutable, even beside a refused change
    step(kube, resource)
    assert kube.objects[("batch/v1", "Job", "ml", "debug-base")]["spec"]["suspend"] is True
    edit(kube, resource, recipe=copy.deepcopy(EXAMPLES["debug-base"]["spec"]["recipe"]),
         resources=copy.deepcopy(EXAMPLES["debug-base"]["spec"]["resources"]))  # reverted: accepted again
    status = step(kube, resource)
    assert next(c for c in status["conditions"] if c["type"] == "Valid")["status"] == "True"


def test_a_stage_without_a_program_fails_as_stage_not_available_without_children(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from tanuki_operator.stages import STAGES

    # every kind has its program today; a kind added before its program behaves like this
    monkeypatch.setitem(STAGES, "DPOJob", dataclasses.replace(STAGES["DPOJob"], program=None))
    kube = FakeKube()
    resource = apply(kube, "debug-dpo")
    status = step(kube, resource)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (status["phase"], ready["reason"]) == ("Failed", "StageNotAvailable")
    assert "no program for DPOJob" in status["message"]
    assert [obj["kind"] for obj in kube.objects.values()] == ["DPOJob"]
    mark = len(kube.calls)
    step(kube, resource)  # looked at again (a newer operator may have it) but nothing is written
    assert kube.writes(mark) == []


@pytest.mark.parametrize("seed", range(100))
def test_crash_anywhere_then_restart_converges_without_duplicates(seed: int) -> None:
    """Kill the reconciler at a seeded API call, restart it (fresh process state), repeat; the end
    state equals an uninterrupted run's and no child exists twice."""
    reference = FakeKube()
    resource = apply(reference, "tanuki-8b")
    upstream = apply(reference, "tanuki-corpus")
    upstream["status"] = {"phase": "Succeeded", "outputs": {"tokens": "/data/tokenizejob/tanuki-corpus",
                                                            "tokenizer": "/data/tokenizejob/tanuki-corpus/tokenizer"}}
    step(reference, resource)
    expected = sorted((k, n) for (_, k, _, n) in reference.objects)
    total_calls = len(reference.calls)

    rng = random.Random(seed)
    kube = FakeKube()
    resource = apply(kube, "tanuki-8b")
    upstream = apply(kube, "tanuki-corpus")
    upstream["status"] = copy.deepcopy(reference.objects[(API_VERSION, "TokenizeJob", "ml", "tanuki-corpus")]["status"])
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
    writes = {(verb, k, n) for verb, k, n in kube.writes() if verb != "status"}
    # only the four children are ever written; a retried create of the Job is a 409, not a second Job
    assert writes <= {("apply", "ConfigMap", "tanuki-8b-recipe"), ("apply", "Service", "tanuki-8b"),
                      ("apply", "NetworkPolicy", "tanuki-8b"), ("create", "Job", "tanuki-8b")}
    assert len(kube.of_kind("Job")) == 1
    assert status["phase"] == "Pending" and status["message"].startswith("waiting for Kueue")


def test_an_existing_job_without_our_owner_reference_is_adopted() -> None:
    kube = FakeKube()
    resource = apply(kube, "debug-base")
    kube.put({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "debug-base", "namespace": "ml",
              "labels": {"team": "x"}}, "spec": {"suspend": False}})
    step(kube, resource)
    job = kube.objects[("batch/v1", "Job", "ml", "debug-base")]
    assert job["metadata"]["ownerReferences"][0]["uid"] == resource["metadata"]["uid"]
    assert len(kube.of_kind("Job")) == 1
