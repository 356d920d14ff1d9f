"""The tanuki operator, run for real by kopf (KopfRunner) against the hardened API emulator.

Our CRDs are POSTed to the emulator (which then serves them), the operator's handlers create
children through the real kubernetes client, and the test plays the Job controller by patching
the child Jobs' status.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from kopf.testing import KopfRunner
from polling import eventually, get

from k8s_schemas import runnable_examples
from tanuki_operator.crds import all_crds

# The safety-net resync is set to minutes: everything below must happen through watch events.
os.environ["TANUKI_RESYNC_SECONDS"] = "600"
import kopf  # noqa: E402

import tanuki_operator.main  # noqa: E402,F401  (registers the handlers in kopf's default registry)

# KopfRunner(registry=...) elsewhere replaces the default registry; keep a handle on ours.
REGISTRY = kopf.get_default_registry()

pytestmark = pytest.mark.asyncio

NS = "ml"
GROUP_PATH = f"/apis/llm.tanuki.dev/v1alpha1/namespaces/{NS}"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
EXAMPLES = {r["metadata"]["name"]: r for r in runnable_examples()}
FROM_BASE = {"from": {"kind": "PretrainJob", "name": "debug-base"}}
"""debug-moe upcycles debug-late in the chain; these tests give it the first stage as upstream."""
PLURAL = {"PretrainJob": "pretrainjobs", "UpcycleJob": "upcyclejobs"}


def path_of(resource: dict[str, Any]) -> str:
    return f"{GROUP_PATH}/{PLURAL[resource['kind']]}"


async def status_of(api, resource: dict[str, Any]) -> dict[str, Any]:
    body = await get(api, f"{path_of(resource)}/{resource['metadata']['name']}")
    return (body or {}).get("status") or {}


async def phase_is(api, resource: dict[str, Any], phase: str) -> dict[str, Any] | None:
    status = await status_of(api, resource)
    return status if status.get("phase") == phase else None


PODS = f"/api/v1/namespaces/{NS}/pods"


async def start_pod(api, name: str) -> str:
    """Play the Job controller: pod 0 of the Job, running."""
    job = await get(api, f"{JOBS}/{name}")
    labels = job["spec"]["template"]["metadata"]["labels"]
    pod = f"{name}-0-x"
    if await get(api, f"{PODS}/{pod}") is None:
        assert (await api.create(PODS, {"metadata": {"name": pod, "labels": labels},
                                        "spec": {"containers": [{"name": "main", "image": "x"}]}}))[0] == 201
    return pod


async def phase_with_progress(api, resource: dict[str, Any]) -> dict[str, Any] | None:
    status = await status_of(api, resource)
    return status if status.get("progress") else None


async def complete_job(api, name: str, outputs: dict[str, Any]) -> None:
    """Play the Job controller: a finished pod with the stage's termination message, Complete."""
    await start_pod(api, name)
    pods = PODS
    message = json.dumps(outputs)
    status, _ = await api.patch(f"{pods}/{name}-0-x/status", {"status": {"containerStatuses": [
        {"name": "main", "state": {"terminated": {"exitCode": 0, "message": message}}}]}})
    assert status == 200
    status, _ = await api.patch(f"{JOBS}/{name}/status", {"status": {
        "succeeded": 1, "startTime": "2026-11-28T10:00:00Z", "completionTime": "2026-11-28T11:00:00Z",
        "conditions": [{"type": "Complete", "status": "True"}]}})
    assert status == 200


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest_asyncio.fixture
async def operator(emulator, kubeconfig, api, monkeypatch) -> AsyncIterator[KopfRunner]:
    monkeypatch.setenv("TANUKI_METRICS_PORT", str(port := free_port()))
    assert (await api.create("/api/v1/namespaces", {"metadata": {"name": NS}}))[0] == 201
    for crd in all_crds().values():
        status, body = await api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        assert status == 201, body
    secret = {"metadata": {"name": "tanuki-api-key"}, "data": {"api-key": "c2VjcmV0"}}  # the examples' servers need it
    assert (await api.create(f"/api/v1/namespaces/{NS}/secrets", secret))[0] == 201
    runner = KopfRunner(["run", "--standalone", f"--namespace={NS}", "-m", "tanuki_operator.main"],
                        registry=REGISTRY, timeout=30)
    runner.metrics_url = f"http://127.0.0.1:{port}/metrics"
    runner.__enter__()
    try:
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)
    assert runner.exit_code == 0, runner.output
    assert "Traceback" not in runner.output, runner.output


async def apply(api, name: str, **spec_changes: Any) -> dict[str, Any]:
    resource = copy.deepcopy(EXAMPLES[name])
    resource["spec"].update(spec_changes)
    status, body = await api.create(path_of(resource), resource)
    assert status == 201, body
    return body


async def test_create_children_then_succeed_with_outputs(operator, api, emulator):
    resource = await apply(api, "debug-base")
    job = await eventually(lambda: get(api, f"{JOBS}/debug-base"))
    for child in (job, await get(api, f"/api/v1/namespaces/{NS}/services/debug-base"),
                  await get(api, f"/api/v1/namespaces/{NS}/configmaps/debug-base-recipe")):
        [owner] = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("PretrainJob", resource["metadata"]["uid"])
    assert job["spec"]["completionMode"] == "Indexed"
    await eventually(lambda: phase_is(api, resource, "Pending"))
    pod = await start_pod(api, "debug-base")
    emulator.pod_logs[NS, pod] = ('[tanuki pretrain] step 60/150 loss 4.5\n'
                                  '[tanuki progress] {"step": 60, "totalSteps": 150, "loss": 4.5}\n')
    assert (await api.patch(f"{JOBS}/debug-base/status", {"status": {"active": 1}}))[0] == 200
    status = await eventually(lambda: phase_is(api, resource, "Running"))
    if "progress" not in status:  # the phase may be written a tick before the log is read
        status = await eventually(lambda: phase_with_progress(api, resource))
    assert status["progress"]["summary"] == "40% (60/150)"
    checkpoint = "/data/pretrainjob/debug-base/checkpoints/step_00000150"
    await complete_job(api, "debug-base", {"checkpoint": checkpoint, "step": 150})
    status = await eventually(lambda: phase_is(api, resource, "Succeeded"))
    assert status["outputs"] == {"checkpoint": checkpoint, "step": 150}
    assert status["observedGeneration"] == 1 and status["completionTime"]
    assert emulator.count("POST", JOBS) == 1 and emulator.count("POST", JOBS, status=201) == 1
    _, events = await api.get(f"/api/v1/namespaces/{NS}/events")
    assert "Succeeded" in {e["reason"] for e in events["items"] if e["involvedObject"]["name"] == "debug-base"}
    import urllib.request

    scrape = await asyncio.to_thread(lambda: urllib.request.urlopen(operator.metrics_url).read().decode())
    assert 'tanuki_resources{kind="PretrainJob",phase="Succeeded"} 1.0' in scrape
    assert 'tanuki_reconciles_total{kind="PretrainJob",result="changed"}' in scrape
    assert "tanuki_reconcile_seconds_bucket" in scrape


async def test_lineage_waits_for_the_upstream_then_releases(operator, api, emulator):
    upcycle = await apply(api, "debug-moe", model=FROM_BASE)
    status = await eventually(lambda: phase_is(api, upcycle, "Waiting"))
    assert "does not exist" in status["message"]
    base = await apply(api, "debug-base")
    await eventually(lambda: get(api, f"{JOBS}/debug-base"))
    status = await eventually(lambda: phase_is(api, upcycle, "Waiting"))
    assert await get(api, f"{JOBS}/debug-moe") is None
    await complete_job(api, "debug-base", {"checkpoint": "/data/ckpt/step_00000150"})
    await eventually(lambda: phase_is(api, base, "Succeeded"))
    await eventually(lambda: get(api, f"{JOBS}/debug-moe"))
    recipe = (await get(api, f"/api/v1/namespaces/{NS}/configmaps/debug-moe-recipe"))["data"]["recipe.yaml"]
    assert "source: /data/ckpt/step_00000150" in recipe


async def test_suspend_and_resume(operator, api, emulator):
    resource = await apply(api, "debug-base")
    await eventually(lambda: get(api, f"{JOBS}/debug-base"))
    name = f"{path_of(resource)}/debug-base"
    assert (await api.patch(name, {"spec": {"suspend": True}}))[0] == 200
    await eventually(lambda: phase_is(api, resource, "Suspended"))
    assert (await get(api, f"{JOBS}/debug-base"))["spec"]["suspend"] is True
    assert (await api.patch(name, {"spec": {"suspend": False}}))[0] == 200
    await eventually(lambda: phase_is(api, resource, "Pending"))
    assert (await get(api, f"{JOBS}/debug-base"))["spec"]["suspend"] is False


async def test_no_finalizer_deletion_is_immediate_and_children_go_by_owner_references(operator, api, emulator):
    resource = await apply(api, "debug-base")
    await eventually(lambda: get(api, f"{JOBS}/debug-base"))
    name = f"{path_of(resource)}/debug-base"
    assert not (await get(api, name))["metadata"].get("finalizers")  # nothing for the operator to clean up
    await runner_stopped(operator)  # deletion does not wait for a running operator
    status, _ = await api.delete(name)
    assert status == 200 and (await api.get(name))[0] == 404
    assert await get(api, f"{JOBS}/debug-base") is None  # garbage collection follows the ownerReferences
    assert await get(api, f"/api/v1/namespaces/{NS}/configmaps/debug-base-recipe") is None


async def runner_stopped(runner: KopfRunner) -> None:
    await asyncio.to_thread(runner.__exit__, None, None, None)
    runner.__exit__ = lambda *_: None  # the fixture's own exit is then a no-op


async def test_a_job_status_change_reconciles_its_owner_within_a_second(operator, api, emulator):
    resource = await apply(api, "debug-base")
    await eventually(lambda: phase_is(api, resource, "Pending"))
    await asyncio.sleep(0.5)  # settled: nothing else is scheduled (the resync is 10 minutes away)
    started = asyncio.get_running_loop().time()
    assert (await api.patch(f"{JOBS}/debug-base/status", {"status": {
        "succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}))[0] == 200
    await eventually(lambda: phase_is(api, resource, "Succeeded"), timeout=5)
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_an_edited_model_server_converges_and_a_recipe_edit_of_a_running_job_is_refused(operator, api, emulator):
    server = await apply(api, "debug-chat", model={"path": "ckpt/a"})
    router = await eventually(lambda: get(api, f"{DEPLOYMENTS}/debug-chat-router"))
    assert "round_robin" not in router["spec"]["template"]["spec"]["containers"][0]["command"]
    path = f"{path_of(server)}/debug-chat"
    assert (await api.patch(path, {"spec": {"router": {"policy": "round_robin"},
                                            "autoscaling": {"maxReplicas": 3}}}))[0] == 200

    async def converged() -> bool:
        router = await get(api, f"{DEPLOYMENTS}/debug-chat-router")
        hpa = await get(api, f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/debug-chat")
        command = router["spec"]["template"]["spec"]["containers"][0]["command"]
        return command[command.index("--policy") + 1] == "round_robin" and hpa["spec"]["maxReplicas"] == 3

    await eventually(converged)
    # the operator's fields are its own (server-side apply), under its field manager
    managers = {entry["manager"] for entry in (await get(api, f"{DEPLOYMENTS}/debug-chat-router"))["metadata"]["managedFields"]}
    assert managers == {"tanuki-operator"}
    # a running PretrainJob's recipe cannot change: the API server refuses it (CEL), naming the field
    job = await apply(api, "debug-base")
    await eventually(lambda: phase_is(api, job, "Pending"))
    await eventually(lambda: _has_run_generation(api, job))
    recipe = copy.deepcopy(EXAMPLES["debug-base"]["spec"]["recipe"])
    recipe["train"]["steps"] = 999
    status, body = await api.patch(f"{path_of(job)}/debug-base", {"spec": {"recipe": recipe}})
    assert status == 422 and "spec.recipe" in body["message"] and "cannot change" in body["message"]
    assert (await api.patch(f"{path_of(job)}/debug-base", {"spec": {"suspend": True}}))[0] == 200


async def _has_run_generation(api, resource: dict[str, Any]) -> bool:
    return (await status_of(api, resource)).get("runGeneration") == 1


async def test_invalid_spec_is_validation_failed_without_children(operator, api, emulator):
    resource = await apply(api, "debug-base", nodes=0, resources={"cpu": "lots"})
    status = await eventually(lambda: phase_is(api, resource, "ValidationFailed"))
    assert "spec.nodes" in status["message"] and "spec.resources.cpu" in status["message"]
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    await asyncio.sleep(1)  # a few timer ticks: still nothing created, no crash loop
    assert emulator.count("POST", JOBS) == 0


DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
PLURAL["ModelServer"] = "modelservers"


async def revision_deployments(api) -> dict[str, dict[str, Any]]:
    _, listing = await api.get(f"{DEPLOYMENTS}?labelSelector=app.kubernetes.io/component%3Dserver")
    return {d["metadata"]["labels"]["llm.tanuki.dev/revision"]: d for d in listing["items"]}


async def test_modelserver_canary_rollout_and_promotion(operator, api, emulator):
    rollout = {"steps": [50], "pauseSeconds": 0}
    server = await apply(api, "debug-chat", model={"path": "ckpt/a"}, autoscaling={"engine": "hpa"},
                         rollout=rollout)
    first = await eventually(lambda: phase_is(api, server, "Pending"))
    stable = first["rollout"]["stable"]["revision"]
    assert first["selector"] and first["rollout"]["trafficShare"] == {"stable": 100, "canary": 0, "retiring": 0}
    router = await eventually(lambda: get(api, f"{DEPLOYMENTS}/debug-chat-router"))
    assert router["spec"]["template"]["spec"]["serviceAccountName"] == "debug-chat-router"
    hpa = await get(api, f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/debug-chat")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "ModelServer"
    # play the Deployment controller: the stable revision's replica becomes ready
    assert (await api.patch(f"{DEPLOYMENTS}/debug-chat-{stable}/status", {"status": {"readyReplicas": 1}}))[0] == 200
    status = await eventually(lambda: phase_is(api, server, "Running"))
    assert status["outputs"]["url"] == f"http://debug-chat.{NS}.svc/v1"
    # a new checkpoint: the canary starts beside the stable revision
    path = f"{path_of(server)}/debug-chat"
    assert (await api.patch(path, {"spec": {"model": {"path": "ckpt/b"}}}))[0] == 200

    async def canary_started() -> dict[str, Any] | None:
        found = await status_of(api, server)
        return found if (found.get("rollout") or {}).get("canary") else None

    during = await eventually(canary_started)
    canary = during["rollout"]["canary"]["revision"]
    assert set(await eventually(lambda: _with(api, {stable, canary}))) == {stable, canary}
    assert (await api.patch(f"{DEPLOYMENTS}/debug-chat-{canary}/status", {"status": {"readyReplicas": 1}}))[0] == 200

    async def promoted() -> dict[str, Any] | None:
        found = await status_of(api, server)
        return found if (found.get("rollout") or {}).get("stable", {}).get("revision") == canary else None

    final = await eventually(promoted)
    assert final["rollout"]["history"][-1]["result"] == "Promoted"
    assert set(await eventually(lambda: _with(api, {canary}))) == {canary}  # the old revision is retired
    _, events = await api.get(f"/api/v1/namespaces/{NS}/events")
    assert {"CanaryStarted", "Promoted"} <= {e["reason"] for e in events["items"]}


async def _with(api, revisions: set[str]) -> dict[str, Any] | None:
    found = await revision_deployments(api)
    return found if set(found) == revisions else None
