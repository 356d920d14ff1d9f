"""kube-proxy for one machine: each Service with a selector is a port on 127.0.0.1 that forwards every
connection to one of the Service's ready pods (round robin), at the local port its ``targetPort``
maps to on that pod.

A Service port listens at the number of the container port it targets (what a client of the pod
would dial: a ModelServer's endpoint is then ``spec.router.port``) when that is free, else at a free
port; ``ObjectStore.service_ports`` records which, and ``service_url`` gives it to the operator, which
reports it where a cluster reports the Service's DNS name. A port starts listening once a pod of
the Service exists (its container ports say what a named ``targetPort`` is); with no ready pod a
connection is refused, as kube-proxy rejects it.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from typing import Any

from tanuki_operator.embedded.node import pod_ready
from tanuki_operator.embedded.store import ObjectStore, matches

ServiceKey = tuple[str, str, int]
"""(namespace, Service name, Service port)."""


def container_port(pod: dict[str, Any], target: int | str) -> int | None:
    """The container port number a Service's ``targetPort`` (a number or a port's name) means in ``pod``."""
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


class Listener:
    """One Service port: accepts on 127.0.0.1 and forwards each connection to a ready pod."""

    def __init__(self, store: ObjectStore, service: dict[str, Any], port: dict[str, Any], preferred: int | None) -> None:
        self.store, self.service, self.port = store, service, port
        self.socket = self._bind(preferred)
        self.number: int = self.socket.getsockname()[1]
        self._turn = itertools.count()
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name=f"service-{service['metadata']['name']}-{port['port']}")
        self._thread.start()

    @staticmethod
    def _bind(preferred: int | None) -> socket.socket:
        for candidate in ([preferred] if preferred else []) + [0]:
            server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                server.bind(("127.0.0.1", candidate))
            except OSError:
                server.close()
                continue
            server.listen(128)
            return server
        raise OSError("no local port is free")

    def backends(self) -> list[int]:
        """The local ports of the Service's ready pods, for this port's ``targetPort``."""
        meta, spec = self.service["metadata"], self.service["spec"]
        target = self.port.get("targetPort", self.port["port"])
        found = []
        for pod in self.store.list("v1", "Pod", meta["namespace"], {}):
            if not matches(pod, spec["selector"]) or not pod_ready(pod):
                continue
            number = container_port(pod, target)
            local = self.store.pod_ports.get((meta["namespace"], pod["metadata"]["name"], number or -1))
            if local is not None:
                found.append(local)
        return found

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.socket.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        backends = self.backends()
        if not backends:
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", backends[next(self._turn) % len(backends)]), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self.socket.close()


class ServiceProxy:
    """The Services of the store as local ports (``sync`` is one pass)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.listeners: dict[ServiceKey, Listener] = {}

    def sync(self) -> None:
        seen = set()
        for service in self.store.of_kind("v1", "Service"):
            meta, spec = service["metadata"], service.get("spec") or {}
            if not spec.get("selector") or spec.get("clusterIP") == "None":
                continue  # headless, or endpoints kept by hand: nothing to proxy
            for port in spec.get("ports") or []:
                key = (meta["namespace"], meta["name"], int(port["port"]))
                seen.add(key)
                listener = self.listeners.get(key)
                if listener is not None and listener.service["spec"] != spec:
                    listener.service = service  # a changed selector or target: new connections follow it
                if listener is None:
                    self._open(key, service, port)
        for key in set(self.listeners) - seen:
            self.listeners.pop(key).close()
            self.store.service_ports.pop(key, None)

    def _open(self, key: ServiceKey, service: dict[str, Any], port: dict[str, Any]) -> None:
        pods = [pod for pod in self.store.list("v1", "Pod", key[0], {}) if matches(pod, service["spec"]["selector"])]
        if not pods:
            return
        preferred = container_port(pods[0], port.get("targetPort", port["port"]))
        listener = Listener(self.store, service, port, preferred)
        self.listeners[key] = listener
        self.store.service_ports[key] = listener.number

    def close(self) -> None:
        for key, listener in list(self.listeners.items()):
            listener.close()
            self.store.service_ports.pop(key, None)
        self.listeners.clear()
