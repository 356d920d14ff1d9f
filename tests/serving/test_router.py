"""vllm-router in front of two real vLLM replicas: both get traffic, and killing one loses no request."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from serving_fixtures import API_KEY, SERVED_NAME
from tanuki_serving.loadgen import LoadConfig, run_load
from tanuki_serving.metrics import parse_vllm_metrics
from tanuki_serving.net import http_get, http_post
from vllm_server import vllm_router, vllm_server

pytestmark = pytest.mark.slow


def served_requests(base_url: str) -> int:
    status, text = http_get(base_url.removesuffix("/v1") + "/metrics")
    assert status == 200
    return parse_vllm_metrics(text).requests


def test_router_spreads_load_and_retries_around_a_killed_replica(vllm_url: str, checkpoints: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    processes: list[subprocess.Popen] = []
    with vllm_server(checkpoints["a"], name=SERVED_NAME, api_key=API_KEY, log=tmp_path / "second.log",
                     started=processes) as second_url:
        with vllm_router([vllm_url.removesuffix("/v1")], tmp_path / "router.log") as router:
            second = second_url.removesuffix("/v1")
            assert http_post(f"{router}/add_worker?url={urllib.parse.quote(second, safe='')}")[0] == 200
            workers = json.loads(http_get(f"{router}/list_workers")[1])["urls"]
            assert sorted(workers) == sorted(u.removesuffix("/v1") for u in (vllm_url, second_url))
            before = {url: served_requests(url) for url in (vllm_url, second_url)}
            config = LoadConfig(base_url=f"{router}/v1", model=SERVED_NAME, api_key=API_KEY, concurrency=2,
                                rate=6, max_tokens=8, stream=False)
            warmup = asyncio.run(run_load(dataclasses.replace(config, requests=12)))
            assert warmup.failed == 0, warmup.errors
            reached = {url: served_requests(url) - before[url] for url in before}
            assert all(count >= 3 for count in reached.values()), reached

            stop = threading.Event()
            reports = []
            thread = threading.Thread(target=lambda: reports.append(asyncio.run(run_load(config, stop))))
            thread.start()
            time.sleep(3)
            os.killpg(processes[0].pid, signal.SIGKILL)  # the second replica dies mid-load
            time.sleep(8)
            stop.set()
            thread.join(timeout=120)
            report = reports[0]
            assert report.requests >= 30
            assert report.failed == 0, report.errors

