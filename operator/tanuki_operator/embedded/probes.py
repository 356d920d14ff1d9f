"""Container probes for the local kubelet: startup, readiness and liveness, run as a kubelet runs them.

A startup probe runs first (every ``periodSeconds`` after ``initialDelaySeconds``, ``failureThreshold``
failures restart the container); once it passed, readiness decides the pod's ``Ready`` condition and
liveness restarts a container that stops answering. ``httpGet`` (2xx/3xx), ``tcpSocket`` and ``exec``
(exit 0) are the handlers; a port is a container port's name or number, which the kubelet maps to
the local port the pod listens on.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3}
"""Kubernetes' defaults for a probe's timing fields."""


def timing(probe: dict[str, Any], field: str) -> float:
    return float(probe.get(field, DEFAULTS[field]))


@dataclass
class ProbeTarget:
    """What a probe reaches: the pod's ports and a way to run a command inside it."""

    ports: dict[str, int]
    """Container port name or number (as text) → the local port the pod listens on."""
    run: Callable[[list[str], float], int]
    """Runs a command in the pod's environment with a timeout in seconds; returns its exit code."""


def probe_once(probe: dict[str, Any], target: ProbeTarget) -> bool:
    """One try of ``probe`` against the pod: True when it passed."""
    timeout = timing(probe, "timeoutSeconds")
    if "exec" in probe:
        return target.run(list(probe["exec"]["command"]), timeout) == 0
    handler = probe.get("httpGet") or probe.get("tcpSocket")
    if handler is None:
        return False
    port = target.ports.get(str(handler["port"]))
    if port is None:
        return False
    if "httpGet" in probe:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}{handler.get('path', '/')}", timeout=timeout)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 400
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


class Prober:
    """The probes of one run of a container, on a thread of their own: ``on_ready`` hears each change of
    readiness, ``on_unhealthy`` (once) why the container must be restarted."""

    def __init__(self, container: dict[str, Any], target: ProbeTarget, on_ready: Callable[[bool], None],
                 on_unhealthy: Callable[[str], None]) -> None:
        self.container, self.target = container, target
        self.on_ready, self.on_unhealthy = on_ready, on_unhealthy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"probe-{container.get('name', '')}", daemon=True)

    @staticmethod
    def needed(container: dict[str, Any]) -> bool:
        """The container has probes: it is not Ready until they say so."""
        return any(key in container for key in ("startupProbe", "readinessProbe", "livenessProbe"))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        startup = self.container.get("startupProbe")
        if startup is not None and not self._passes_startup(startup):
            return
        readiness, liveness = self.container.get("readinessProbe"), self.container.get("livenessProbe")
        if readiness is None:
            self.on_ready(True)
        ready: bool | None = None if readiness is not None else True
        live_failures = 0
        period = min([timing(p, "periodSeconds") for p in (readiness, liveness) if p is not None] or [10.0])
        if self._stop.wait(min(timing(p, "initialDelaySeconds") for p in (readiness, liveness) if p is not None)
                           if readiness is not None or liveness is not None else 0):
            return
        while not self._stop.is_set():
            if readiness is not None:
                now_ready = probe_once(readiness, self.target)
                if now_ready != ready and not self._stop.is_set():
                    ready = now_ready
                    self.on_ready(now_ready)
            if liveness is not None:
                live_failures = 0 if probe_once(liveness, self.target) else live_failures + 1
                if live_failures >= timing(liveness, "failureThreshold") and not self._stop.is_set():
                    self.on_unhealthy(f"Liveness probe failed {live_failures} times")
                    return
            self._stop.wait(period)

    def _passes_startup(self, probe: dict[str, Any]) -> bool:
        if self._stop.wait(timing(probe, "initialDelaySeconds")):
            return False
        failures = 0
        while not self._stop.is_set():
            if probe_once(probe, self.target):
                return True
            failures += 1
            if failures >= timing(probe, "failureThreshold"):
                if not self._stop.is_set():
                    self.on_unhealthy(f"Startup probe failed {failures} times")
                return False
            self._stop.wait(timing(probe, "periodSeconds"))
        return False
