"""RayJobs on the local kubelet: the entrypoint runs as the driver pod (the head template's env,
volumes, labels and termination message) with Ray started in its own process; KubeRay's statuses,
backoff and suspend."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from polling import run_until

from tanuki_operator.embedded.kubelet import Kubelet
from tanuki_operator.embedded.store import ObjectStore

DRIVER = """
import json, os, pathlib, sys, time
time.sleep(float(os.environ.get("SLEEP", "0")))
if os.environ.get("RAY_CHECK"):
    import ray
    ray.init(address="auto", include_dashboard=False, num_cpus=1)  # what a program given --ray-address auto does
    answer = ray.get(ray.remote(lambda: 6 * 7).remote())
    nodes = len(ray.nodes())
    ray.shutdown()
else:
    answer, nodes = None, None
out = pathlib.Path(os.environ["OUT"]); out.mkdir(parents=True, exist_ok=True)
(out / "done").write_text("yes")
pathlib.Path(os.environ["MESSAGE"]).write_text(json.dumps({"ray": os.environ.get("RAY_ADDRESS"), "answer": answer,
                                                           "nodes": nodes, "threads": os.environ.get("OMP_NUM_THREADS")}))
sys.exit(int(sys.argv[1]))
"""


def rayjob(name: str, exit_code: int = 0, backoff: int = 0, sleep: float = 0, ray_check: bool = False,
           worker_cpu: str = "1") -> dict[str, Any]:
    def pod(cpu: str, labels: dict[str, str] | None = None, env: list[dict[str, str]] | None = None) -> dict[str, Any]:
        return {"metadata": {"labels": labels or {}}, "spec": {"containers": [{
            "name": "main", "image": "trainer", "resources": {"requests": {"cpu": cpu}},
            "env": env or [], "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "terminationMessagePath": "/dev/termination-log"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}}]}}

    env = [{"name": "MESSAGE", "value": "/dev/termination-log"}, {"name": "SLEEP", "value": str(sleep)},
           {"name": "OUT", "value": "/data/out"},
           {"name": "RAY_CHECK", "value": "1" if ray_check else ""}]
    return {"apiVersion": "ray.io/v1", "kind": "RayJob",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {"entrypoint": shlex.join([sys.executable, "-c", DRIVER, str(exit_code)]),
                     "backoffLimit": backoff, "suspend": False,
                     "submitterPodTemplate": pod("500m", {"submitter": "true"}),  # what KubeRay's submitter runs
                     "rayClusterSpec": {"headGroupSpec": {"template": pod("1", {"llm.tanuki.dev/kind": "tokenizejob",
                                                                                "llm.tanuki.dev/name": name}, env)},
                                        "workerGroupSpecs": [{"replicas": 1, "template": pod(worker_cpu)}]}}}


def status(store: ObjectStore, name: str) -> dict[str, Any]:
    return (store.get("ray.io/v1", "RayJob", "ml", name) or {}).get("status") or {}


def drivers(store: ObjectStore, name: str) -> list[dict[str, Any]]:
    return store.list("v1", "Pod", "ml", {"llm.tanuki.dev/name": name})


def test_the_entrypoint_runs_as_the_driver_pod_of_the_head_template(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=2, echo=lambda line: None)
    store.apply(rayjob("tokens"))
    assert kubelet.busy()
    run_until(kubelet, lambda: status(store, "tokens").get("jobStatus") == "SUCCEEDED")
    found = status(store, "tokens")
    assert found["jobDeploymentStatus"] == "Complete" and found["startTime"] and found["endTime"]
    [driver] = drivers(store, "tokens")
    terminated = driver["status"]["containerStatuses"][0]["state"]["terminated"]
    message = json.loads(terminated["message"])  # the driver's termination message: where outputs are read
    assert message["ray"] == "local"  # Ray starts in the driver's process: the cluster is this node
    assert (tmp_path / "pvc" / "out" / "done").read_text() == "yes"  # the head template's volumes
    assert driver["metadata"]["ownerReferences"][0]["kind"] == "RayJob"
    assert not kubelet.busy()


def test_a_failing_driver_runs_again_up_to_the_backoff_limit_then_the_rayjob_fails(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=2, echo=lambda line: None)
    store.apply(rayjob("flaky", exit_code=3, backoff=1))
    run_until(kubelet, lambda: status(store, "flaky").get("jobStatus") == "FAILED")
    found = status(store, "flaky")
    assert found["jobDeploymentStatus"] == "Failed" and found["failed"] == 2 and len(drivers(store, "flaky")) == 2
    assert "exited with code 3" in found["message"]


def test_suspending_stops_the_driver_without_a_failure_and_resuming_runs_it_anew(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=2, echo=lambda line: None)
    store.apply(rayjob("paused", sleep=60))
    run_until(kubelet, lambda: status(store, "paused").get("jobStatus") == "RUNNING")
    store.patch("ray.io/v1", "RayJob", "ml", "paused", {"spec": {"suspend": True}})
    run_until(kubelet, lambda: [p["status"]["phase"] for p in drivers(store, "paused")] == ["Failed"])
    found = status(store, "paused")
    assert found["jobDeploymentStatus"] == "Suspended" and "jobStatus" not in found
    assert drivers(store, "paused")[0]["status"]["conditions"][0]["type"] == "DisruptionTarget"
    store.patch("ray.io/v1", "RayJob", "ml", "paused", {"spec": {"suspend": False}})
    run_until(kubelet, lambda: status(store, "paused").get("jobStatus") == "RUNNING")
    assert len(drivers(store, "paused")) == 2 and status(store, "paused").get("failed", 0) == 0
    kubelet.stop()


def test_the_driver_gets_the_cores_of_head_and_workers_at_most_the_nodes(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=2, echo=lambda line: None)
    store.apply(rayjob("wide", sleep=60, worker_cpu="32"))
    run_until(kubelet, lambda: status(store, "wide").get("jobStatus") == "RUNNING")
    assert [pod.cpus for pod in kubelet.pods.values()] == [2.0]
    kubelet.stop()


@pytest.mark.slow  # starts Ray
def test_ray_init_auto_in_the_driver_starts_ray_on_this_node(tmp_path: Path) -> None:
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path, cpus=2, echo=lambda line: None)
    store.apply(rayjob("ray", ray_check=True))
    run_until(kubelet, lambda: status(store, "ray").get("jobStatus") in ("SUCCEEDED", "FAILED"), timeout=180)
    [driver] = drivers(store, "ray")
    assert status(store, "ray")["jobStatus"] == "SUCCEEDED", (tmp_path / ".tanuki").glob("**/log")
    message = json.loads(driver["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert message["answer"] == 42 and message["nodes"] == 1
