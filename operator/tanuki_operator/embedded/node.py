"""What the controllers of the embedded cluster (``rayjobs``, ``deployments``) use of the kubelet
they run on: a protocol, so that they do not import the kubelet that imports them."""

from __future__ import annotations

from typing import Any, Protocol

from tanuki_operator.embedded.store import ObjectStore


def has_condition(obj: dict[str, Any], kind: str) -> bool:
    """The object's status has condition ``kind`` with status True (a Job's Complete, a pod's Ready)."""
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def pod_ready(pod: dict[str, Any]) -> bool:
    return has_condition(pod, "Ready")


class Node(Protocol):
    """The kubelet, as the controllers of the embedded cluster see it."""

    store: ObjectStore
    capacity: float

    def pods_of(self, owner: dict[str, Any]) -> list[dict[str, Any]]: ...

    def terminate(self, namespace: str, name: str, evict: bool = False) -> None: ...

    def fits_cores(self, cpus: float) -> bool: ...

    def counts_as_disruption(self, pod: dict[str, Any]) -> bool: ...

    def exit_summary(self, pod: dict[str, Any]) -> str: ...

    def start_pod(self, owner: dict[str, Any], template: dict[str, Any], hostname: str, cpus: float,
                  hosts: set[str], ports: dict[str, str], *, labels: dict[str, str], annotations: dict[str, str],
                  manager: str, command: list[str] | None = None, env: dict[str, str] | None = None) -> bool: ...
