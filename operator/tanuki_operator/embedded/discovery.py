"""vllm-router's Kubernetes service discovery, on one machine.

On a cluster the router watches the pods matching ``--selector`` (``--service-discovery``) and routes
to each ready one at ``--service-discovery-port``. Locally there is no API server for it to watch:
the kubelet starts the router without those flags and keeps its worker list to the ready pods of
the selector instead, through the router's own admin API (``/list_workers``, ``/add_worker``,
``/remove_worker``), each pod at the local port its container port maps to. A pod that stops being
ready, or is deleted, leaves the list before its preStop hook ends, as it would leave the endpoints.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import httpx

from tanuki_operator.embedded.node import pod_ready
from tanuki_operator.embedded.store import ObjectStore, matches


@dataclass
class RouterDiscovery:
    """What a router pod's discovery flags asked for."""

    selector: dict[str, str]
    port: int
    """The workers' container port."""
    namespace: str


def split_discovery(command: list[str], namespace: str) -> tuple[list[str], RouterDiscovery | None]:
    """A ``vllm-router`` command without its service-discovery flags, and what they asked for (None when
    the command is not a router discovering its workers)."""
    if not command or Path(command[0]).name != "vllm-router" or "--service-discovery" not in command:
        return command, None
    kept: list[str] = []
    selector: dict[str, str] = {}
    port, found_namespace = 8000, namespace
    index = 0
    while index < len(command):
        argument = command[index]
        index += 1
        if argument == "--selector":
            while index < len(command) and not command[index].startswith("--"):
                key, _, value = command[index].partition("=")
                selector[key] = value
                index += 1
        elif argument == "--service-discovery-port":
            port, index = int(command[index]), index + 1
        elif argument == "--service-discovery-namespace":
            found_namespace, index = command[index], index + 1
        elif argument != "--service-discovery":
            kept.append(argument)
    return kept, RouterDiscovery(selector, port, found_namespace)


def admin_url(command: list[str]) -> str | None:
    """Where the router started by ``command`` (its local arguments) takes admin requests."""
    if "--port" not in command:
        return None
    return f"http://127.0.0.1:{command[command.index('--port') + 1]}"


def worker_urls(store: ObjectStore, discovery: RouterDiscovery) -> set[str]:
    """The URLs of the ready pods the router's selector matches."""
    urls = set()
    for pod in store.list("v1", "Pod", discovery.namespace, {}):
        if matches(pod, discovery.selector) and pod_ready(pod):
            local = store.pod_ports.get((discovery.namespace, pod["metadata"]["name"], discovery.port))
            if local is not None:
                urls.add(f"http://127.0.0.1:{local}")
    return urls


def sync_router(admin: str, wanted: set[str]) -> None:
    """Make the router at ``admin`` route to exactly ``wanted`` (nothing when it does not answer yet)."""
    try:
        listed = httpx.get(f"{admin}/list_workers", timeout=2)
    except httpx.HTTPError:
        return
    if not listed.is_success:
        return
    current = set(listed.json().get("urls") or [])
    for url in sorted(current - wanted):
        _post(f"{admin}/remove_worker?url={urllib.parse.quote(url, safe='')}")
    for url in sorted(wanted - current):  # the router checks a new worker's health before it answers
        _post(f"{admin}/add_worker?url={urllib.parse.quote(url, safe='')}")


def _post(url: str) -> None:
    try:
        httpx.post(url, timeout=30)
    except httpx.HTTPError:
        return  # the next pass tries again
