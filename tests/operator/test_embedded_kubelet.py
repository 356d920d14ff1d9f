"""The local kubelet runs the Jobs in the embedded store as processes, as a node and the Job
controller would: completions, env and ``$(VAR)``s, mounted ConfigMaps and PVCs, termination
messages, pod failure policy and backoff, suspend, cores, and pods orphaned by an earlier runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from polling import run_until

from tanuki_operator.embedded.kubelet import Kubelet, expand
from tanuki_operator.embedded.store import ObjectStore

SCRIPT = """
import json, os, pathlib, sys, time
time.sleep(float(os.environ.get("SLEEP", "0")))
recipe = pathlib.Path(sys.argv[1]).read_text()
out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
(out / f"rank-{os.environ['RANK']}").write_text(recipe)
pathlib.Path(os.environ["MESSAGE"]).write_text(json.dumps({"rank": os.environ["RANK"], "peer": sys.argv[3], "port": sys.argv[4],
    "cores": sorted(os.sched_getaffinity(0)), "threads": os.environ.get("OMP_NUM_THREADS"),
    "extensions": os.environ.get("TORCH_EXTENSIONS_DIR"), "cache": os.environ.get("XDG_CACHE_HOME")}))
sys.exit(int(os.environ.get("EXIT", "0")))
"""


def job(name: str, completions: int = 1, cpu: str = "1", exit_code: int = 0, backoff: int = 0,
        suspend: bool = False, sleep: float = 0) -> dict[str, Any]:
    container = {
        "name": "main", "command": ["python3", "-c", SCRIPT, "/etc/recipe/recipe.yaml", "/data/out/$(RANK)",
                                    f"{name}-0.{name}", "29500"],
        "env": [{"name": "RANK", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
                {"name": "MESSAGE", "value": "/dev/termination-log"}, {"name": "EXIT", "value": str(exit_code)},
                {"name": "TORCH_EXTENSIONS_DIR", "value": "/data/torch_extensions"},
                {"name": "SLEEP", "value": str(sleep)}],
        "ports": [{"containerPort": 29500}],
        "resources": {"requests": {"cpu": cpu}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "recipe", "mountPath": "/etc/recipe"}],
        "terminationMessagePath": "/dev/termination-log",
    }
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "ml", "labels": {"llm.tanuki.dev/kind": "upcyclejob",
                                                                    "llm.tanuki.dev/name": name}},
            "spec": {"completions": completions, "parallelism": completions, "completionMode": "Indexed",
                     "backoffLimit": backoff, "suspend": suspend,
                     "podFailurePolicy": {"rules": [
                         {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [2]}},
                         {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]},
                     "template": {"metadata": {"labels": {"llm.tanuki.dev/name": name}}, "spec": {
                         "subdomain": name, "restartPolicy": "Never", "containers": [container],
                         "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
                                     {"name": "recipe", "configMap": {"name": f"{name}-recipe"}}]}}}}


def create(store: ObjectStore, name: str, **options: Any) -> None:
    store.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-recipe", "namespace": "ml"},
                 "data": {"recipe.yaml": f"recipe of {name}\n"}})
    store.apply(job(name, **options))


def condition(store: ObjectStore, name: str) -> str | None:
    found = store.get("batch/v1", "Job", "ml", name) or {}
    return next((c["type"] for c in (found.get("status") or {}).get("conditions") or []
                 if c["type"] in ("Complete", "Failed") and c["status"] == "True"), None)


def pods(store: ObjectStore, name: str) -> list[dict[str, Any]]:
    return [p for p in store.list("v1", "Pod", "ml", {"job-name": name})]


def test_an_indexed_job_runs_each_index_with_its_env_volumes_and_termination_message(tmp_path: Path) -> None:
    store = ObjectStore()
    node = {key: value for key, value in os.environ.items() if key != "TORCH_EXTENSIONS_DIR"}
    kubelet = Kubelet(store, tmp_path, cpus=4, echo=lambda line: None, environ=node)
    create(store, "train", completions=2)
    run_until(kubelet, lambda: condition(store, "train") is not None)
    assert condition(store, "train") == "Complete"
    status = store.get("batch/v1", "Job", "ml", "train")["status"]
    assert status["succeeded"] == 2 and status["startTime"] and status["completionTime"]
    messages = {}
    for pod in pods(store, "train"):
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert pod["status"]["phase"] == "Succeeded" and terminated["exitCode"] == 0
        messages[pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]] = json.loads(
            terminated["message"])
    assert sorted(messages) == ["0", "1"]
    # build caches are the machine's (an image ships them built), not the pod's emptyDir or HOME
    assert {(m["extensions"], m["cache"]) for m in messages.values()} == {
        (None, os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"))}
    assert {m["peer"] for m in messages.values()} == {"127.0.0.1"}  # the pod DNS name of index 0
    ports = {m["port"] for m in messages.values()}
    assert len(ports) == 1 and "29500" not in ports  # the Job's declared port moved to one free port
    if len(os.sched_getaffinity(0)) >= 2:  # one core each, to itself (a whole-core request below the node's)
        cores = [m["cores"] for m in messages.values()]
        assert [len(c) for c in cores] == [1, 1] and cores[0] != cores[1]
        assert {m["threads"] for m in messages.values()} == {"1"}
    for rank in ("0", "1"):  # $(RANK) expanded, /data is the PVC's directory, the ConfigMap a file
        assert (tmp_path / "pvc" / "out" / rank / f"rank-{rank}").read_text() == "recipe of train\n"


def test_bad_input_fails_the_job_at_once_and_other_failures_after_the_backoff_limit(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=4, echo=lambda line: None)
    create(store, "bad", exit_code=2, backoff=3)
    create(store, "flaky", exit_code=1, backoff=1)
    run_until(kubelet, lambda: condition(store, "bad") and condition(store, "flaky"))
    bad = store.get("batch/v1", "Job", "ml", "bad")["status"]["conditions"][0]
    assert (bad["type"], bad["reason"]) == ("Failed", "PodFailurePolicy") and "exited with code 2" in bad["message"]
    assert len(pods(store, "bad")) == 1  # not retried
    flaky = store.get("batch/v1", "Job", "ml", "flaky")["status"]
    assert flaky["conditions"][0]["reason"] == "BackoffLimitExceeded" and len(pods(store, "flaky")) == 2


def test_pods_wait_for_cores_and_a_suspended_job_starts_none(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=3, echo=lambda line: None)
    create(store, "first", completions=2)
    create(store, "second", completions=2)
    create(store, "held", suspend=True)
    kubelet.sync()  # 2 + 2 cores do not fit in 3, and no Job starts half its pods (their rendezvous would hang)
    assert len(pods(store, "first")) == 2 and pods(store, "second") == []
    run_until(kubelet, lambda: condition(store, "first") and condition(store, "second"))
    # the second Job's two pods start together once a core came free (one of the first Job's ended)
    first_freed = min(p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] for p in pods(store, "first"))
    starts = {p["status"]["startTime"] for p in pods(store, "second")}
    assert len(pods(store, "second")) == 2 and first_freed <= min(starts)
    assert pods(store, "held") == []
    assert store.get("batch/v1", "Job", "ml", "held")["status"]["conditions"][0]["type"] == "Suspended"
    store.patch("batch/v1", "Job", "ml", "held", {"spec": {"suspend": False}})
    run_until(kubelet, lambda: condition(store, "held"))
    assert condition(store, "held") == "Complete"


def test_a_pod_an_earlier_runner_left_running_is_disrupted_and_run_again(tmp_path: Path) -> None:
    path = tmp_path / "objects.json"
    earlier = ObjectStore(path)
    create(earlier, "resumed")
    earlier.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "resumed-0-aaaaa", "namespace": "ml", "labels": {"job-name": "resumed"},
        "annotations": {"batch.kubernetes.io/job-completion-index": "0"},
        "ownerReferences": [{"uid": earlier.get("batch/v1", "Job", "ml", "resumed")["metadata"]["uid"]}]},
        "spec": {}})
    earlier.patch_status("v1", "Pod", "ml", "resumed-0-aaaaa", {"phase": "Running"})
    pod_dir = tmp_path / ".tanuki" / "pods" / "ml" / "resumed-0-aaaaa"  # its process outlived the runner
    pod_dir.mkdir(parents=True)
    leftover = subprocess.Popen(["sleep", "600"], cwd=pod_dir, start_new_session=True)
    earlier.patch("v1", "Pod", "ml", "resumed-0-aaaaa",
                  {"metadata": {"annotations": {"local.tanuki.dev/pid": str(leftover.pid)}}})
    store = ObjectStore(path)
    kubelet = Kubelet(store, tmp_path, cpus=2, echo=lambda line: None)
    kubelet.disrupt_orphans()
    assert leftover.wait(timeout=30) == -signal.SIGTERM  # stopped before its pod runs again
    run_until(kubelet, lambda: condition(store, "resumed"))
    assert condition(store, "resumed") == "Complete"
    old = store.get("v1", "Pod", "ml", "resumed-0-aaaaa")["status"]
    assert old["phase"] == "Failed" and old["conditions"][0]["type"] == "DisruptionTarget"
    assert store.get("batch/v1", "Job", "ml", "resumed")["status"].get("failed", 0) == 0  # a disruption is no failure


def test_kubernetes_variable_expansion() -> None:
    assert expand("--rank $(RANK) $(UNKNOWN) $$(RANK)", {"RANK": "3"}) == "--rank 3 $(UNKNOWN) $(RANK)"


def test_suspending_a_running_job_stops_its_pod_without_counting_a_failure(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=2, echo=lambda line: None)
    create(store, "paused", sleep=60)
    kubelet.sync()
    assert [p["status"]["phase"] for p in pods(store, "paused")] == ["Running"]
    store.patch("batch/v1", "Job", "ml", "paused", {"spec": {"suspend": True}})
    run_until(kubelet, lambda: [p["status"]["phase"] for p in pods(store, "paused")] == ["Failed"])
    stopped = pods(store, "paused")[0]["status"]
    assert stopped["conditions"][0]["type"] == "DisruptionTarget"
    status = store.get("batch/v1", "Job", "ml", "paused")["status"]
    assert status.get("failed", 0) == 0 and status["conditions"][0]["type"] == "Suspended"
    assert condition(store, "paused") is None  # backoffLimit 0, and still not Failed
    assert "startTime" not in status  # a suspension resets the clock of activeDeadlineSeconds


def test_a_job_active_past_its_deadline_fails_and_its_pod_is_stopped(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=2, echo=lambda line: None)
    create(store, "slow", sleep=60)
    store.patch("batch/v1", "Job", "ml", "slow", {"spec": {"activeDeadlineSeconds": 2}})
    started = time.monotonic()
    run_until(kubelet, lambda: condition(store, "slow") is not None, timeout=30)
    failed = store.get("batch/v1", "Job", "ml", "slow")["status"]["conditions"][0]
    assert (failed["type"], failed["reason"]) == ("Failed", "DeadlineExceeded")
    assert 1 <= time.monotonic() - started < 20  # startTime has whole seconds; the pod sleeps 60 s: stopped
    run_until(kubelet, lambda: [p["status"]["phase"] for p in pods(store, "slow")] == ["Failed"])
