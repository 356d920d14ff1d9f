"""The local kubelet runs Deployments as a node and the Deployment controller would: each pod its own
process and ports, probes deciding readiness, containers restarted with a back-off, a new template
rolled out without losing the ready pods, deleted pods stopped after their preStop hook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from polling import run_until

from tanuki_operator.embedded import kubelet as kubelet_module
from tanuki_operator.embedded.deployments import HASH_LABEL
from tanuki_operator.embedded.kubelet import Kubelet
from tanuki_operator.embedded.store import ObjectStore

SERVER = """
import os, pathlib, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
if os.environ.get("CRASH"):
    print("cannot load the model", flush=True)
    sys.exit(3)
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        sick = self.path == "/health" and pathlib.Path(os.environ["FLAG_DIR"], "sick").exists()
        body = os.environ["VERSION"].encode()
        self.send_response(503 if sick else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def deployment(name: str, replicas: int = 2, version: str = "1", crash: bool = False,
               flags: Path | None = None) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}
    env = [{"name": "VERSION", "value": version}, {"name": "FLAG_DIR", "value": str(flags or "/nowhere")}]
    if crash:
        env.append({"name": "CRASH", "value": "1"})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "ml", "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "terminationGracePeriodSeconds": 10,
                         "containers": [{
                             "name": "server", "command": ["python3", "-c", SERVER, "8000"], "env": env,
                             "ports": [{"name": "http", "containerPort": 8000}],
                             "resources": {"requests": {"cpu": "100m"}},
                             "terminationMessagePolicy": "FallbackToLogsOnError",
                             "startupProbe": {**probe, "failureThreshold": 30},
                             "readinessProbe": probe,
                             "lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}]}}}}


def pods(store: ObjectStore, name: str) -> list[dict[str, Any]]:
    return store.list("v1", "Pod", "ml", {"app": name})


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


def answer(store: ObjectStore, pod: dict[str, Any]) -> str | None:
    return store.pod_proxy_get("ml", pod["metadata"]["name"], 8000, "/")


@pytest.fixture
def node(tmp_path: Path):
    store = ObjectStore()
    kubelet = Kubelet(store, tmp_path / "work", cpus=2, echo=lambda line: None)
    yield store, kubelet
    kubelet.stop()


def test_replicas_get_their_own_ports_and_are_ready_when_their_probe_says(node, tmp_path: Path) -> None:
    store, kubelet = node
    flags = tmp_path / "flags"
    flags.mkdir()
    store.apply(deployment("web", flags=flags))
    run_until(kubelet, lambda: (store.get("apps/v1", "Deployment", "ml", "web").get("status") or {})
              .get("readyReplicas") == 2, timeout=60)
    found = pods(store, "web")
    assert len(found) == 2 and all(ready(pod) for pod in found)
    ports = {store.pod_ports["ml", pod["metadata"]["name"], 8000] for pod in found}
    assert len(ports) == 2 and all(answer(store, pod) == "1" for pod in found)
    status = store.get("apps/v1", "Deployment", "ml", "web")["status"]
    assert (status["replicas"], status["updatedReplicas"], status["observedGeneration"]) == (2, 2, 1)

    (flags / "sick").write_text("")  # the readiness probe fails: not Ready, still running
    run_until(kubelet, lambda: store.get("apps/v1", "Deployment", "ml", "web")["status"]["readyReplicas"] == 0,
              timeout=30)
    assert not any(ready(pod) for pod in pods(store, "web"))
    assert all(answer(store, pod) == "1" for pod in pods(store, "web"))


def test_a_new_template_rolls_out_keeping_ready_pods_until_new_ones_are_ready(node) -> None:
    store, kubelet = node
    store.apply(deployment("web", replicas=1))
    run_until(kubelet, lambda: any(ready(pod) for pod in pods(store, "web")), timeout=60)
    [first] = pods(store, "web")
    store.apply(deployment("web", replicas=1, version="2"))
    kubelet.sync()
    during = pods(store, "web")
    assert len(during) == 2 and first["metadata"]["name"] in {pod["metadata"]["name"] for pod in during}
    run_until(kubelet, lambda: [answer(store, pod) for pod in pods(store, "web")] == ["2"], timeout=60)
    [second] = pods(store, "web")
    assert second["metadata"]["labels"][HASH_LABEL] != first["metadata"]["labels"][HASH_LABEL]
    run_until(kubelet, lambda: ("ml", first["metadata"]["name"]) not in kubelet.pods, timeout=30)  # stopped

    store.patch("apps/v1", "Deployment", "ml", "web", {"spec": {"replicas": 0}})
    run_until(kubelet, lambda: not pods(store, "web") and not kubelet.pods, timeout=30)
    assert store.get("apps/v1", "Deployment", "ml", "web")["status"]["replicas"] == 0


def test_a_crashing_container_restarts_with_a_back_off_and_says_why(node, monkeypatch) -> None:
    store, kubelet = node
    monkeypatch.setattr(kubelet_module, "BACKOFF_SECONDS", 0.5)
    store.apply(deployment("broken", replicas=1, crash=True))

    def restarted_twice() -> bool:
        found = pods(store, "broken")
        statuses = (found[0].get("status") or {}).get("containerStatuses") or [] if found else []
        return bool(statuses) and statuses[0]["restartCount"] >= 2

    run_until(kubelet, restarted_twice, timeout=60)
    [pod] = pods(store, "broken")
    container = pod["status"]["containerStatuses"][0]
    assert container["lastState"]["terminated"]["exitCode"] == 3
    assert "cannot load the model" in container["lastState"]["terminated"]["message"]  # FallbackToLogsOnError
    assert not ready(pod) and pod["status"]["phase"] == "Running"
    assert not kubelet.busy()  # a server's pods are not work the runner waits for
    run_until(kubelet, lambda: "CrashLoopBackOff" == ((pods(store, "broken")[0]["status"]["containerStatuses"][0]
                                                       .get("state") or {}).get("waiting") or {}).get("reason"),
              timeout=30)


def test_a_pod_deleted_while_it_runs_is_stopped_after_its_pre_stop_hook(node) -> None:
    store, kubelet = node
    store.apply(deployment("web", replicas=1))
    run_until(kubelet, lambda: any(ready(pod) for pod in pods(store, "web")), timeout=60)
    [pod] = pods(store, "web")
    port = store.pod_ports["ml", pod["metadata"]["name"], 8000]
    store.delete("apps/v1", "Deployment", "ml", "web")  # its pods go with it
    kubelet.sync()
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "1"  # the preStop hook waits first
    run_until(kubelet, lambda: not kubelet.pods, timeout=30)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def router(name: str, backends: str, port: int) -> list[dict[str, Any]]:
    """A vllm-router Deployment discovering the pods labelled ``app=<backends>``, and its Service, as the
    operator renders a ModelServer's front door."""
    from tanuki_serving.config import RouterConfig
    from tanuki_serving.launch import router_command

    command = router_command(RouterConfig(port=port, policy="round_robin", healthCheckIntervalSeconds=1),
                             selector={"app": backends}, namespace="ml", worker_port=8000)
    labels = {"app": name}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "ml"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": {
             "containers": [{"name": "router", "command": command,
                             "ports": [{"name": "http", "containerPort": port}, {"name": "metrics", "containerPort": 29000}],
                             "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "ml"},
         "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
    ]


def test_a_service_reaches_the_router_which_discovers_the_ready_pods_of_its_selector(node) -> None:
    from tanuki_serving.net import free_port

    store, kubelet = node
    port = free_port()
    store.apply(deployment("web", replicas=2))
    for manifest in router("front", "web", port):
        store.apply(manifest)
    url = store.service_url("ml", "front", 80)
    assert url == "http://front.ml.svc"  # not served here yet: the cluster's name

    def workers() -> list[str]:
        local = store.service_url("ml", "front", 80)
        try:
            return httpx.get(f"{local}/list_workers", timeout=2).json()["urls"] if "127.0.0.1" in local else []
        except (httpx.HTTPError, ValueError):
            return []

    run_until(kubelet, lambda: len(workers()) == 2, timeout=60)
    assert store.service_url("ml", "front", 80) == f"http://127.0.0.1:{port}"  # the router's own port number
    expected = {f"http://127.0.0.1:{store.pod_ports['ml', pod['metadata']['name'], 8000]}" for pod in pods(store, "web")}
    assert set(workers()) == expected
    answered = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
    assert answered.text == "1"

    store.patch("apps/v1", "Deployment", "ml", "web", {"spec": {"replicas": 1}})  # one leaves the router too
    run_until(kubelet, lambda: len(workers()) == 1, timeout=30)


def test_a_service_whose_port_is_taken_listens_elsewhere_and_says_where(node) -> None:
    import socket

    store, kubelet = node
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        store.apply(deployment("web", replicas=1))
        store.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "ml"},
                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": taken}]}})
        store.patch("apps/v1", "Deployment", "ml", "web", {"spec": {"template": {"spec": {"containers": [
            {**deployment("web")["spec"]["template"]["spec"]["containers"][0],
             "command": ["python3", "-c", SERVER, str(taken)], "ports": [{"name": "http", "containerPort": taken}]}]}}}})
        run_until(kubelet, lambda: "127.0.0.1" in store.service_url("ml", "web", 80)
                  and any(ready(pod) for pod in pods(store, "web")), timeout=60)
        url = store.service_url("ml", "web", 80)
        assert url != f"http://127.0.0.1:{taken}"
        assert httpx.get(url, timeout=5).text == "1"


def test_a_deployment_deleted_after_the_pass_listed_it_gets_no_new_pod(node) -> None:
    store, kubelet = node
    store.apply(deployment("gone", replicas=1))
    listed = kubelet.deployments.deployments()  # what a pass sees before the operator deletes a retired revision
    store.delete("apps/v1", "Deployment", "ml", "gone")
    for found in listed:
        kubelet.deployments.sync_one(found)
    assert pods(store, "gone") == []
