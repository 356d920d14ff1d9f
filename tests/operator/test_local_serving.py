"""``tanuki local apply`` serving a ModelServer through the operator's own reconcile, its pods on the
local kubelet: vLLM replicas behind vllm-router, rolled out on a spec change under steady load
with no failed request; a broken checkpoint is rolled back; bad input (a missing Secret, an
unknown checkpoint) ends in a status that says why, and the runner stops waiting for it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from serving_fixtures import API_KEY, SERVED_NAME
from tanuki_operator.local import statuses
from tanuki_serving.loadgen import LoadConfig, run_load
from tanuki_serving.net import free_port, http_get


def server_yaml(path: Path, model: Path | str, port: int, **spec: Any) -> None:
    resource = {
        "apiVersion": "llm.tanuki.dev/v1alpha1",
        "kind": "ModelServer",
        "metadata": {"name": SERVED_NAME},
        "spec": {
            "storage": {"claimName": "tanuki-data"},
            "model": {"path": str(model)},
            "engine": {"max_model_len": 256, "dtype": "float32", "extra_args": ["--enforce-eager"]},
            "resources": {"gpus": 0},
            "autoscaling": {"engine": "none"},
            "replicas": 1,
            "router": {"port": port, "policy": "round_robin"},
            "rollout": {"steps": [50], "pauseSeconds": 3,
                        "analysis": {"smokePrompts": ["こんにちは"], "readyTimeoutSeconds": 400}},
            "auth": {"apiKey": {"name": "tanuki-api-key", "key": "api-key"}},
            **spec,
        },
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(resource, allow_unicode=True))
    os.replace(temporary, path)  # the runner never reads a half-written file


def on_the_volume(workdir: Path, checkpoints: dict[str, Path]) -> dict[str, str]:
    """Each checkpoint where a pod sees it: on the ModelServer's PVC (``WORKDIR/tanuki-data``), by a
    path relative to it, as an upstream stage's output is."""
    models = workdir / "tanuki-data" / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name, checkpoint in checkpoints.items():
        (models / name).symlink_to(checkpoint, target_is_directory=True)
    return {name: f"models/{name}" for name in checkpoints}


def served(status: dict[str, Any], track: str) -> Path | None:
    """The checkpoint directory the rollout's ``track`` (stable, canary) serves."""
    model = (status["rollout"].get(track) or {}).get("model")
    return Path(model).resolve() if model else None


def write_secret(workdir: Path, value: str = API_KEY) -> None:
    secret = workdir / "secrets" / "tanuki-api-key" / "api-key"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(value)


def status_of(workdir: Path) -> dict[str, Any]:
    return statuses(workdir).get(f"ModelServer/{SERVED_NAME}", {})


def wait_for(workdir: Path, condition, timeout: float, runner: subprocess.Popen) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = status_of(workdir)
        if status and condition(status):
            return status
        assert runner.poll() is None, f"runner exited with {runner.returncode}"
        time.sleep(0.5)
    raise AssertionError(f"timed out; last status: {json.dumps(status_of(workdir), indent=1)}")


def apply_once(tmp_path: Path, manifest: Path, workdir: Path) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(manifest),
                             "--workdir", str(workdir), "--serve-for", "0", "--ready-timeout", "60"],
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_missing_secret_is_reported_before_anything_starts_naming_the_field_and_the_file(
        tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    manifest = tmp_path / "server.yaml"
    server_yaml(manifest, on_the_volume(tmp_path / "work", checkpoints)["a"], free_port())
    code, output = apply_once(tmp_path, manifest, tmp_path / "work")
    assert code == 1
    status = status_of(tmp_path / "work")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (status["phase"], ready["reason"]) == ("Waiting", "SecretMissing")
    assert status["message"] == "spec.auth.apiKey: no Secret tanuki-api-key (it needs the key api-key)"
    secret_file = tmp_path / "work" / "secrets" / "tanuki-api-key" / "api-key"
    assert f"locally a Secret is a directory of files, one per key: {secret_file}" in output
    assert not (tmp_path / "work" / ".tanuki" / "pods").exists()  # no replica, no router was started


@pytest.mark.slow
def test_unknown_checkpoint_is_reported_with_what_vllm_said(tmp_path: Path) -> None:
    manifest = tmp_path / "server.yaml"
    server_yaml(manifest, "models/nowhere", free_port())
    write_secret(tmp_path / "work")
    code, output = apply_once(tmp_path, manifest, tmp_path / "work")
    assert code == 1
    status = status_of(tmp_path / "work")
    assert "CrashLoopBackOff" in status["message"] and "exited with code" in status["message"]
    assert str(tmp_path / "work" / "tanuki-data" / "models" / "nowhere") in status["message"]  # vLLM's own error


@pytest.mark.slow
def test_rollout_under_load_loses_nothing_and_a_broken_checkpoint_is_rolled_back(
        tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    workdir, manifest, port = tmp_path / "work", tmp_path / "server.yaml", free_port()
    write_secret(workdir)
    paths = on_the_volume(workdir, checkpoints)
    server_yaml(manifest, paths["a"], port)
    log = open(tmp_path / "runner.log", "w")
    runner = subprocess.Popen([sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(manifest),
                               "--workdir", str(workdir)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    stop, reports = threading.Event(), []
    load = threading.Thread(target=lambda: reports.append(__import__("asyncio").run(run_load(LoadConfig(
        base_url=f"http://127.0.0.1:{port}/v1", model=SERVED_NAME, api_key=API_KEY, concurrency=2, rate=4,
        max_tokens=8, stream=True), stop))))
    try:
        first = wait_for(workdir, lambda s: s.get("phase") == "Running", 300, runner)
        stable_a = first["rollout"]["stable"]["revision"]
        outputs = first["outputs"]
        assert (outputs["url"], outputs["model"]) == (f"http://127.0.0.1:{port}/v1", SERVED_NAME)
        assert Path(outputs["checkpoint"]).resolve() == checkpoints["a"].resolve()  # as a cluster's ModelServer
        load.start()
        time.sleep(3)

        server_yaml(manifest, paths["b"], port)  # a new checkpoint: canary → promote
        during = wait_for(workdir, lambda s: served(s, "canary") == checkpoints["b"].resolve(),
                          60, runner)
        assert during["rollout"]["trafficShare"] == {"stable": 50, "canary": 50, "retiring": 0}
        promoted = wait_for(workdir, lambda s: served(s, "stable") == checkpoints["b"].resolve()
                            and s["rollout"].get("canary") is None, 400, runner)
        assert promoted["rollout"]["history"][-1]["result"] == "Promoted"
        time.sleep(4)  # the old replica drains and stops while load continues

        server_yaml(manifest, paths["broken"], port)  # vLLM cannot load it: rolled back
        rolled = wait_for(workdir, lambda s: s["rollout"]["history"][-1]["result"] == "RolledBack", 400, runner)
        assert "exited with code" in rolled["rollout"]["history"][-1]["reason"]
        assert rolled["phase"] == "Running" and rolled["rollout"]["stable"] == promoted["rollout"]["stable"]
        time.sleep(3)
    finally:
        stop.set()
        if load.is_alive():
            load.join(timeout=120)
        runner_status = runner.poll()
        if runner_status is None:
            os.killpg(runner.pid, signal.SIGTERM)
            runner.wait(timeout=120)
        log.close()
    report = reports[0]
    assert report.requests >= 40, report
    assert report.failed == 0, (report.errors, (tmp_path / "runner.log").read_text()[-3000:])
    # the stable revision B served until the end; A was retired, the broken canary never took traffic
    assert stable_a != promoted["rollout"]["stable"]["revision"]
    final = status_of(workdir)
    assert final["phase"] == "Pending"  # its node (the runner) is gone; the rollout history stays
    assert final["rollout"]["stable"] == promoted["rollout"]["stable"]
    assert http_get(f"http://127.0.0.1:{port}/health", timeout=2)[0] == 0  # router gone with the runner
    # on CPU each replica's worker runs inside its engine process (CPU_VLLM_ENV): no third process
    # importing vLLM again
    replica_logs = [p.read_text() for p in (workdir / ".tanuki" / "pods" / "local").glob(f"{SERVED_NAME}-*/log")
                    if "-router-" not in p.parent.name]
    assert len(replica_logs) >= 3 and not any("(Worker pid=" in text for text in replica_logs)
    assert any(re.search(r"\(EngineCore pid=\d+\).*cpu_worker", text) for text in replica_logs)
