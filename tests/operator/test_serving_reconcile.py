"""ModelServer reconcile against an in-memory API: revision Deployments, canary steps, promotion,
automatic rollback on crash loops and on vLLM's error counters, and a missing Secret in status."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fake_kube import FakeKube

from k8s_schemas import example_resources
from tanuki_operator.api import API_VERSION
from tanuki_operator.handlers.reconcile import reconcile
from tanuki_operator.render import Settings
from tanuki_serving.rollout import RolloutState

SETTINGS = Settings()
SERVER = next(r for r in example_resources() if r["metadata"]["name"] == "debug-chat")


def apply(kube: FakeKube, model: str | dict[str, Any], **spec_changes: Any) -> dict[str, Any]:
    resource = copy.deepcopy(SERVER)
    resource["metadata"]["namespace"] = "ml"
    defaults = {"autoscaling": {"engine": "none"}, "replicas": 1,
                "rollout": {"steps": [50], "pauseSeconds": 0, "analysis": {"maxErrorRate": 0.05}}}
    resource["spec"].update({**defaults, "model": {"path": model} if isinstance(model, str) else model, **spec_changes})
    key = (API_VERSION, "ModelServer", "ml", "debug-chat")
    if key in kube.objects:
        kube.objects[key]["spec"] = resource["spec"]
        kube.objects[key]["metadata"]["generation"] += 1
        return kube.objects[key]
    resource["metadata"]["generation"] = 1
    if ("v1", "Secret", "ml", "tanuki-api-key") not in kube.objects:  # the key the example's replicas mount
        kube.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tanuki-api-key", "namespace": "ml"},
                  "data": {"api-key": "c2VjcmV0"}})
    return kube.put(resource)


def step(kube: FakeKube) -> tuple[dict[str, Any], Any]:
    """One reconcile with its status merged in, as the controller writes it."""
    current = kube.objects[(API_VERSION, "ModelServer", "ml", "debug-chat")]
    outcome = reconcile(kube, SETTINGS, "ModelServer", copy.deepcopy(current))
    if outcome.status:
        kube.patch_status(API_VERSION, "ModelServer", "ml", "debug-chat", outcome.status)
    return kube.objects[(API_VERSION, "ModelServer", "ml", "debug-chat")]["status"], outcome.event


def revision_deployments(kube: FakeKube) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["labels"]["llm.tanuki.dev/revision"]: obj for obj in kube.of_kind("Deployment")
            if "llm.tanuki.dev/revision" in obj["metadata"]["labels"]}


def become_ready(kube: FakeKube, revision: str, container_state: dict[str, Any] | None = None,
                 restarts: int = 0, metrics: str | None = None) -> None:
    deployment = revision_deployments(kube)[revision]
    replicas = deployment["spec"]["replicas"]
    healthy = container_state is None
    deployment["status"] = {"replicas": replicas, "readyReplicas": replicas if healthy else 0}
    labels = dict(deployment["spec"]["template"]["metadata"]["labels"])
    for index in range(replicas):
        name = f"{deployment['metadata']['name']}-pod{index}"
        kube.put({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "ml", "labels": dict(labels)},
                  "status": {"conditions": [{"type": "Ready", "status": "True" if healthy else "False"}],
                             "containerStatuses": [{"name": "vllm", "restartCount": restarts,
                                                    "state": container_state or {"running": {}}}]}})
        if metrics is not None:
            kube.metrics["ml", name] = metrics


def vllm_metrics(ok: int, errors: int) -> str:
    return (f'http_requests_total{{handler="/v1/chat/completions",method="POST",status="2xx"}} {ok}\n'
            f'http_requests_total{{handler="/v1/chat/completions",method="POST",status="5xx"}} {errors}\n'
            f'http_requests_total{{handler="/metrics",method="GET",status="2xx"}} 100\n')


def serving(kube: FakeKube, model: str) -> str:
    """A ModelServer serving ``model`` from a ready stable revision; returns that revision."""
    apply(kube, model)
    status, _ = step(kube)
    assert status["phase"] == "Pending" and status["rollout"]["stable"]["model"] == model
    revision = status["rollout"]["stable"]["revision"]
    become_ready(kube, revision)
    status, _ = step(kube)
    assert status["phase"] == "Running" and status["replicas"] == 1
    return revision


def start_canary(kube: FakeKube, model: str, **spec_changes: Any) -> tuple[str, str, dict[str, Any], Any]:
    """Serving /data/ckpt/a, then ``model`` applied: (stable revision, canary revision, status, event)."""
    stable = serving(kube, "/data/ckpt/a")
    apply(kube, model, **spec_changes)
    status, event = step(kube)
    return stable, status["rollout"]["canary"]["revision"], status, event


def test_first_revision_router_and_scale_selector() -> None:
    kube = FakeKube()
    revision = serving(kube, "/data/ckpt/a")
    status = kube.objects[(API_VERSION, "ModelServer", "ml", "debug-chat")]["status"]
    assert status["rollout"]["trafficShare"] == {"stable": 100, "canary": 0, "retiring": 0}
    assert status["outputs"]["url"] == "http://debug-chat.ml.svc/v1"
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in kube.objects.values()}
    assert {("Deployment", f"debug-chat-{revision}"), ("Deployment", "debug-chat-router"),
            ("Service", "debug-chat"), ("ServiceAccount", "debug-chat-router")} <= names
    pod_labels = revision_deployments(kube)[revision]["spec"]["template"]["metadata"]["labels"]
    selector = dict(item.split("=") for item in status["selector"].split(","))
    assert selector.items() <= pod_labels.items()


def test_new_checkpoint_canary_then_promotion_retires_the_old_revision() -> None:
    kube = FakeKube()
    old, canary, status, event = start_canary(kube, "/data/ckpt/b")
    assert event[1] == "CanaryStarted" and canary != old
    deployments = revision_deployments(kube)
    assert {rev: d["spec"]["replicas"] for rev, d in deployments.items()} == {old: 1, canary: 1}
    assert status["rollout"]["trafficShare"] == {"stable": 50, "canary": 50, "retiring": 0}
    assert status["phase"] == "Running"  # the stable revision keeps serving throughout
    status, event = step(kube)
    assert status["rollout"].get("canary") is not None and event is None  # not ready yet: no promotion
    become_ready(kube, canary, metrics=vllm_metrics(ok=40, errors=0))
    status, event = step(kube)  # healthy, error rate 0, pause 0: the last step passes
    assert event[1] == "Promoted"
    assert status["rollout"]["stable"] == {"revision": canary, "model": "/data/ckpt/b"}
    assert status["rollout"].get("canary") is None
    assert status["rollout"]["history"][-1]["result"] == "Promoted"
    assert status["rollout"]["retiring"]["revision"] == old  # serves until the promoted one is complete
    status, _ = step(kube)  # the promoted revision runs its one replica: the old one goes
    assert status["rollout"].get("retiring") is None
    assert set(revision_deployments(kube)) == {canary}
    assert revision_deployments(kube)[canary]["spec"]["replicas"] == 1


def test_crash_looping_canary_is_rolled_back_and_not_retried() -> None:
    kube = FakeKube()
    stable, canary, status, _ = start_canary(kube, "/data/ckpt/broken")
    become_ready(kube, canary, container_state={"waiting": {"reason": "CrashLoopBackOff",
                                                            "message": "back-off restarting failed container"}},
                 restarts=3)
    status, event = step(kube)
    assert event[0] == "Warning" and event[1] == "RolledBack"
    assert "CrashLoopBackOff" in status["message"] and status["phase"] == "Running"
    assert status["rollout"]["stable"]["revision"] == stable and status["rollout"].get("canary") is None
    assert status["rollout"]["failedRevisions"] == [canary]
    assert set(revision_deployments(kube)) == {stable}
    status, event = step(kube)  # the same broken revision is not started again
    assert set(revision_deployments(kube)) == {stable} and event is None
    assert "was rolled back" in status["message"]


def test_canary_above_the_error_rate_is_rolled_back() -> None:
    kube = FakeKube()
    stable, canary, status, _ = start_canary(kube, "/data/ckpt/b")
    become_ready(kube, canary, metrics=vllm_metrics(ok=90, errors=10))
    status, event = step(kube)
    assert event[1] == "RolledBack" and "error rate 10.0%" in status["message"]
    assert set(revision_deployments(kube)) == {stable}


def test_missing_secret_is_a_clear_status() -> None:
    kube = FakeKube()
    apply(kube, "/data/ckpt/a")
    status, _ = step(kube)
    revision = status["rollout"]["stable"]["revision"]
    become_ready(kube, revision, container_state={"waiting": {
        "reason": "CreateContainerConfigError", "message": 'secret "tanuki-api-key" not found'}})
    status, _ = step(kube)
    assert status["phase"] == "Pending"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ReplicaFailing" and 'secret "tanuki-api-key" not found' in ready["message"]


def test_autoscaler_total_is_split_across_revisions() -> None:
    kube = FakeKube()
    old, canary, status, _ = start_canary(kube, "/data/ckpt/b", replicas=4, rollout={"steps": [25, 50], "pauseSeconds": 0})
    assert {rev: d["spec"]["replicas"] for rev, d in revision_deployments(kube).items()} == {old: 3, canary: 1}
    become_ready(kube, canary)
    status, event = step(kube)
    assert event[1] == "CanaryStep" and status["rollout"]["trafficShare"] == {"stable": 50, "canary": 50, "retiring": 0}
    assert {rev: d["spec"]["replicas"] for rev, d in revision_deployments(kube).items()} == {old: 2, canary: 2}
    become_ready(kube, canary)
    status, event = step(kube)
    assert event[1] == "Promoted"
    # capacity holds: the old revision keeps its 2 replicas while the promoted one scales from 2 to 4
    assert {rev: d["spec"]["replicas"] for rev, d in revision_deployments(kube).items()} == {old: 2, canary: 4}
    status, _ = step(kube)
    assert status["rollout"]["retiring"]["revision"] == old  # only 2 of 4 ready yet
    become_ready(kube, canary)
    status, _ = step(kube)
    assert status["rollout"].get("retiring") is None and set(revision_deployments(kube)) == {canary}


def test_rollout_metrics_count_each_finished_rollout_once() -> None:
    from tanuki_operator import metrics

    kube = FakeKube()
    serving(kube, "/data/ckpt/a")
    before = copy.deepcopy(kube.objects[(API_VERSION, "ModelServer", "ml", "debug-chat")]["status"]["rollout"])
    apply(kube, "/data/ckpt/b")
    status, _ = step(kube)
    metrics.record_rollout("ml", "metrics-test", RolloutState.model_validate(before), RolloutState.of(status))
    sample = metrics.REGISTRY.get_sample_value
    assert sample("tanuki_modelserver_canary_step", {"namespace": "ml", "name": "metrics-test"}) == 0
    assert sample("tanuki_modelserver_traffic_share", {"namespace": "ml", "name": "metrics-test", "track": "canary"}) == 50
    become_ready(kube, status["rollout"]["canary"]["revision"])
    during = copy.deepcopy(status["rollout"])
    status, _ = step(kube)
    for _ in range(2):  # the same status observed twice counts once
        metrics.record_rollout("ml", "metrics-test", RolloutState.model_validate(during), RolloutState.of(status))
        during = copy.deepcopy(status["rollout"])
    labels = {"namespace": "ml", "name": "metrics-test"}
    assert sample("tanuki_modelserver_rollouts_total", {**labels, "result": "Promoted"}) == 1
    assert sample("tanuki_modelserver_canary_step", labels) == -1
    assert sample("tanuki_modelserver_replicas", {**labels, "track": "stable"}) == 1


def test_a_new_checkpoint_from_the_upstream_job_rolls_out() -> None:
    kube = FakeKube()
    upstream = {"apiVersion": API_VERSION, "kind": "DPOJob", "metadata": {"name": "debug-dpo", "namespace": "ml"},
                "spec": {}, "status": {"phase": "Succeeded", "outputs": {"checkpoint": "/data/dpo/run1"}}}
    kube.put(upstream)
    apply(kube, {"from": {"kind": "DPOJob", "name": "debug-dpo"}})
    status, _ = step(kube)
    first = status["rollout"]["stable"]
    assert first["model"] == "/data/dpo/run1"
    become_ready(kube, first["revision"])
    assert step(kube)[0]["phase"] == "Running"
    # the DPOJob reruns and publishes a new checkpoint: no ModelServer spec change needed
    kube.objects[(API_VERSION, "DPOJob", "ml", "debug-dpo")]["status"]["outputs"]["checkpoint"] = "/data/dpo/run2"
    status, event = step(kube)
    assert event[1] == "CanaryStarted" and status["rollout"]["canary"]["model"] == "/data/dpo/run2"
    assert status["rollout"]["stable"] == first


def children(kube: FakeKube) -> dict[tuple[str, str], dict[str, Any]]:
    return {(obj["kind"], obj["metadata"]["name"]): copy.deepcopy(obj) for obj in kube.objects.values()
            if obj["kind"] not in ("ModelServer", "Pod")}


def changes(before: dict, after: dict) -> set[str]:
    """What one reconcile did to the children: ``+Kind/name``, ``-Kind/name``, ``~Kind/name``."""
    found = {f"+{kind}/{name}" for kind, name in after.keys() - before.keys()}
    found |= {f"-{kind}/{name}" for kind, name in before.keys() - after.keys()}
    found |= {f"~{kind}/{name}" for key in before.keys() & after.keys()
              if {k: v for k, v in before[key].items() if k != "status"}
              != {k: v for k, v in after[key].items() if k != "status"} for kind, name in [key]}
    return found


SERVING = {"autoscaling": {"engine": "hpa", "minReplicas": 1, "maxReplicas": 2}}


CANARY_CHILDREN = {"+Deployment/debug-chat-CANARY", "+Service/debug-chat-rev-CANARY"}
"""What a canary adds: its revision's Deployment and its own Service."""


@pytest.mark.parametrize(("edit", "expected"), [
    ({"router": {"policy": "power_of_two"}}, {"~Deployment/debug-chat-router"}),
    ({"router": {"replicas": 2}}, {"~Deployment/debug-chat-router"}),
    ({"autoscaling": {"engine": "hpa", "minReplicas": 1, "maxReplicas": 5}}, {"~HorizontalPodAutoscaler/debug-chat"}),
    ({"autoscaling": {"engine": "keda", "minReplicas": 1, "maxReplicas": 2}},
     {"-HorizontalPodAutoscaler/debug-chat", "+ScaledObject/debug-chat"}),
    ({"monitoring": {"serviceMonitor": True}}, {"+ServiceMonitor/debug-chat"}),
    ({"rollout": {"steps": [10, 50], "pauseSeconds": 60}}, set()),
    ({"resources": {"gpus": 0, "cpu": "3", "memory": "8Gi"}}, CANARY_CHILDREN),
    ({"engine": {"max_model_len": 512, "dtype": "float32"}}, CANARY_CHILDREN),
    ({"auth": {"apiKey": {"name": "other-key", "key": "api-key"}}}, CANARY_CHILDREN),
    ({"scheduling": {"nodeSelector": {"pool": "serving"}}},
     {*CANARY_CHILDREN, "~Deployment/debug-chat-router"}),
])
def test_each_edit_changes_exactly_the_children_it_concerns(edit: dict[str, Any], expected: set[str]) -> None:
    kube = FakeKube()
    stable = serving_with(kube, "/data/ckpt/a", **SERVING)
    before = children(kube)
    apply(kube, "/data/ckpt/a", **{**SERVING, **edit})
    status, _ = step(kube)
    canary = (status["rollout"].get("canary") or {}).get("revision", "")
    assert changes(before, children(kube)) == {item.replace("CANARY", canary) for item in expected}
    assert status["rollout"]["stable"]["revision"] == stable  # the serving revision is untouched
    if "CANARY" in "".join(expected):  # what changes a replica rolls out as a canary beside it
        assert canary and canary != stable
    settled = children(kube)
    step(kube)
    assert changes(settled, children(kube)) == set()  # and then nothing more is written


def test_monitoring_off_again_deletes_the_service_monitor_and_a_deleted_router_comes_back() -> None:
    kube = FakeKube()
    serving_with(kube, "/data/ckpt/a", monitoring={"serviceMonitor": True})
    assert ("ServiceMonitor", "debug-chat") in children(kube)
    apply(kube, "/data/ckpt/a", monitoring={"serviceMonitor": False})
    step(kube)
    assert ("ServiceMonitor", "debug-chat") not in children(kube)
    kube.objects.pop(("apps/v1", "Deployment", "ml", "debug-chat-router"))
    step(kube)
    assert ("Deployment", "debug-chat-router") in children(kube)


def serving_with(kube: FakeKube, model: str, **spec_changes: Any) -> str:
    apply(kube, model, **spec_changes)
    status, _ = step(kube)
    revision = status["rollout"]["stable"]["revision"]
    become_ready(kube, revision)
    status, _ = step(kube)
    assert status["phase"] == "Running"
    return revision


def test_the_initial_model_serves_until_the_job_publishes_then_its_checkpoint_rolls_out_as_a_canary() -> None:
    from tanuki_operator.lineage import resolve
    from tanuki_operator.stages import STAGES

    kube = FakeKube()
    for kind, name, phase, outputs in (("SFTJob", "debug-sft", "Succeeded", {"checkpoint": "/data/sft"}),
                                       ("DPOJob", "debug-dpo", "Running", {})):
        kube.put({"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": "ml"},
                  "spec": {}, "status": {"phase": phase, "outputs": outputs}})
    apply(kube, {"from": {"kind": "DPOJob", "name": "debug-dpo"}},
          initialModel={"from": {"kind": "SFTJob", "name": "debug-sft"}})
    status, _ = step(kube)
    assert status["rollout"]["stable"]["model"] == "/data/sft"
    become_ready(kube, status["rollout"]["stable"]["revision"])
    status, _ = step(kube)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (status["phase"], ready["reason"]) == ("Running", "ServingInitialModel")
    assert "DPOJob/debug-dpo (Running)" in status["message"]

    def consumer_waits_for() -> list[str]:  # an EvalJob reading this ModelServer
        evaluation = next(r for r in example_resources() if r["metadata"]["name"] == "debug-eval")
        model = STAGES["EvalJob"].spec.model_validate(evaluation["spec"])

        def lookup(kind: str, name: str) -> dict[str, Any]:
            found = kube.objects.get((API_VERSION, kind, "ml", name))
            return None if found is None else found.get("status") or {}
        return resolve(model, model.storage, lookup).waiting_for

    assert "ModelServer/debug-chat (Running: serving spec.initialModel)" in consumer_waits_for()
    dpo = kube.objects[(API_VERSION, "DPOJob", "ml", "debug-dpo")]
    dpo["status"] = {"phase": "Succeeded", "outputs": {"checkpoint": "/data/dpo"}}
    status, event = step(kube)
    assert event[1] == "CanaryStarted" and status["rollout"]["canary"]["model"] == "/data/dpo"
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "Serving"
    assert "ModelServer/debug-chat (Running: a canary is rolling out)" in consumer_waits_for()
    become_ready(kube, status["rollout"]["canary"]["revision"], metrics=vllm_metrics(ok=10, errors=0))
    status, event = step(kube)
    assert event[1] == "Promoted" and status["rollout"]["stable"]["model"] == "/data/dpo"
    assert not [w for w in consumer_waits_for() if w.startswith("ModelServer/debug-chat")]
    # the DPOJob runs again (a new generation): what serves stays; the initial model does not come back
    dpo["status"] = {"phase": "Running"}
    status, _ = step(kube)
    assert status["phase"] == "Waiting" and status["rollout"]["stable"]["model"] == "/data/dpo"
