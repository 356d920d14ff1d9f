"""Opt-in end-to-end tier: install the chart into the cluster in $KUBECONFIG and run the debug
chain's PretrainJob to completion.

    KUBECONFIG=~/.kube/config TANUKI_E2E_IMAGE_REGISTRY=... pytest --e2e tests/e2e

Needs: the operator and trainer images pullable by the cluster (values via --set), a PVC named
`tanuki-data` with the debug corpus in the test namespace (see examples/debug-chain.yaml).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from k8s_tools import helm_binary, kubectl_binary

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def kubectl(*args: str, stdin: str | None = None) -> str:
    return subprocess.run([str(kubectl_binary()), *args], input=stdin, capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture(scope="module")
def namespace() -> str:
    if not os.environ.get("KUBECONFIG"):
        pytest.fail("--e2e needs KUBECONFIG")
    name = os.environ.get("TANUKI_E2E_NAMESPACE", f"tanuki-e2e-{uuid.uuid4().hex[:6]}")
    release = f"tanuki-{name[-6:]}"
    extra = os.environ.get("TANUKI_E2E_HELM_SET", "")
    subprocess.run([str(helm_binary()), "upgrade", "--install", release, str(REPO / "charts" / "tanuki"),
                    "--namespace", name, "--create-namespace", "--wait", "--timeout", "5m",
                    *([f"--set={extra}"] if extra else [])], check=True)
    yield name
    subprocess.run([str(helm_binary()), "uninstall", release, "--namespace", name], check=False)


def test_debug_pretrain_succeeds(namespace: str) -> None:
    chain = [doc for doc in yaml.safe_load_all((REPO / "examples" / "debug-chain.yaml").read_text()) if doc]
    pretrain = next(doc for doc in chain if doc["kind"] == "PretrainJob")
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(pretrain))
    deadline = time.monotonic() + 1800
    status: dict = {}
    while time.monotonic() < deadline:
        status = json.loads(kubectl("get", "pretrainjob", pretrain["metadata"]["name"], "-n", namespace,
                                    "-o", "json")).get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed", "ValidationFailed"):
            break
        time.sleep(10)
    assert status.get("phase") == "Succeeded", status
    assert status["outputs"]["checkpoint"].startswith("/data/")


def test_debug_server_serves_the_pretrained_checkpoint(namespace: str) -> None:
    """After the PretrainJob: a ModelServer on its output becomes Running behind vllm-router and
    answers through the API server's service proxy. Needs the serving image and a Secret
    `tanuki-api-key` (key `api-key`) in the namespace."""
    server = {
        "apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "ModelServer", "metadata": {"name": "e2e-chat"},
        "spec": {"storage": {"claimName": "tanuki-data"}, "model": {"from": {"kind": "PretrainJob", "name": "debug-base"}},
                 "engine": {"max_model_len": 256, "dtype": "float32", "extra_args": ["--enforce-eager"]},
                 "resources": {"gpus": 0, "cpu": "2", "memory": "8Gi"}, "autoscaling": {"engine": "none"},
                 "auth": {"apiKey": {"name": "tanuki-api-key", "key": "api-key"}}},
    }
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(server))
    deadline = time.monotonic() + 900
    status: dict = {}
    while time.monotonic() < deadline:
        status = json.loads(kubectl("get", "modelserver", "e2e-chat", "-n", namespace, "-o", "json")).get("status") or {}
        if status.get("phase") == "Running":
            break
        time.sleep(10)
    assert status.get("phase") == "Running", status
    assert status["rollout"]["stable"]["model"].startswith("/data/")
    # kubectl exits non-zero (check=True raises) unless the router behind the Service answers 200
    kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/services/e2e-chat:http/proxy/health")
