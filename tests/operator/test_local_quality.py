"""``tanuki local apply`` of a ModelServer whose rollouts are gated on quality, with real vLLM
replicas and the operator's EvalJob judging each canary on held-out perplexity (``tanuki eval
gate`` against the revisions' own endpoints). Serving a checkpoint made worse (noise on its
weights), the good one rolls out over it and is promoted; the worse one as the canary of the good
one is rolled back with ``QualityRegression`` and its figures in the status. Steady chat load
through the router during both rollouts: no failed request."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_local_serving import on_the_volume, served, server_yaml, status_of, wait_for, write_secret

from serving_fixtures import API_KEY, SERVED_NAME, noised_checkpoint
from tanuki_operator.local import statuses
from tanuki_serving.loadgen import LoadConfig, run_load
from tanuki_serving.net import free_port

pytestmark = pytest.mark.slow

QUALITY = {"recipe": {"mode": "gate", "gate": {"perplexity": {"max_texts": 24, "max_text_tokens": 200,
                                                             "max_drop": 0.05}}},
           "retrySeconds": 5, "resources": {"cpu": "1", "memory": "2Gi"}}


def test_a_worse_canary_is_rolled_back_by_the_perplexity_gate_and_a_better_one_promoted(
        tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    worse = noised_checkpoint(checkpoints["a"], tmp_path / "worse", std=0.5)
    workdir, manifest, port = tmp_path / "work", tmp_path / "server.yaml", free_port()
    write_secret(workdir)
    paths = on_the_volume(workdir, {"good": checkpoints["a"], "worse": worse})
    rollout = {"steps": [50], "pauseSeconds": 3,
               "analysis": {"readyTimeoutSeconds": 400, "quality": QUALITY}}
    server_yaml(manifest, paths["worse"], port, rollout=rollout)
    log = open(tmp_path / "runner.log", "w")
    runner = subprocess.Popen([sys.executable, "-m", "tanuki_pipelines.cli", "local", "apply", "-f", str(manifest),
                               "--workdir", str(workdir)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    stop, reports = threading.Event(), []
    load = threading.Thread(target=lambda: reports.append(asyncio.run(run_load(LoadConfig(
        base_url=f"http://127.0.0.1:{port}/v1", model=SERVED_NAME, api_key=API_KEY, concurrency=2, rate=4,
        max_tokens=8, stream=True), stop))))
    try:
        wait_for(workdir, lambda s: s.get("phase") == "Running", 300, runner)
        load.start()
        time.sleep(2)

        server_yaml(manifest, paths["good"], port, rollout=rollout)  # better than what serves: promoted
        started = time.monotonic()
        evaluating = wait_for(workdir, lambda s: ((s["rollout"].get("canary") or {}).get("quality") or {})
                              .get("evaluation"), 400, runner)
        ready_at = time.monotonic()
        promoted = wait_for(workdir, lambda s: served(s, "stable") == checkpoints["a"].resolve()
                            and s["rollout"].get("canary") is None, 400, runner)
        promoted_at = time.monotonic()
        record = promoted["rollout"]["history"][-1]
        assert record["result"] == "Promoted" and "quality: perplexity:" in record["reason"], record
        evaluation = evaluating["rollout"]["canary"]["quality"]["evaluation"]
        judged = statuses(workdir)[f"EvalJob/{evaluation}"]
        assert judged["phase"] == "Succeeded" and judged["outputs"]["verdict"]["passed"] is True
        better_drop = judged["outputs"]["verdict"]["figures"]["perplexity"]["drop"]
        assert better_drop < 0  # the canary's log-likelihood is above the reference's
        time.sleep(3)

        server_yaml(manifest, paths["worse"], port, rollout=rollout)  # worse than what serves: rolled back
        rolled = wait_for(workdir, lambda s: s["rollout"]["history"][-1]["result"] == "RolledBack", 400, runner)
        record = rolled["rollout"]["history"][-1]
        assert record["reason"].startswith("quality gate failed: perplexity:"), record
        assert rolled["rollout"]["stable"] == promoted["rollout"]["stable"] and rolled["phase"] == "Running"
        time.sleep(3)
    finally:
        stop.set()
        if load.is_alive():
            load.join(timeout=120)
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGTERM)
            runner.wait(timeout=120)
        log.close()
    runner_log = (tmp_path / "runner.log").read_text()
    assert "QualityRegression" in runner_log  # the Event, with the figures
    report = reports[0]
    assert report.requests >= 40, report
    assert report.failed == 0, (report.errors, runner_log[-3000:])
    print(f"\nbetter canary: ready + evaluation started after {ready_at - started:.0f} s, promoted "
          f"{promoted_at - ready_at:.0f} s later (drop {better_drop:+.4f} nats); worse canary: {record['reason']}; "
          f"load {report.requests} requests, {report.failed} failed")
    final = status_of(workdir)
    assert final["rollout"]["failedRevisions"]
