"""Kubernetes' ways of writing time and quantities, shared by the controller, renderer and kubelet."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    """The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds_since(timestamp: str) -> float:
    """Seconds from a Kubernetes timestamp (``2026-12-03T10:00:00Z``) until now."""
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (datetime.now(UTC) - then).total_seconds()


def cpu_cores(quantity: str | None) -> float:
    """A Kubernetes CPU quantity ("2", "500m") in cores (0 when absent)."""
    if not quantity:
        return 0.0
    from kubernetes.utils.quantity import parse_quantity

    return float(parse_quantity(quantity))  # type: ignore[no-untyped-call]  # kubernetes leaves it unannotated


def whole_cores(quantity: str | None) -> int:
    """Cores a program may keep busy within a CPU limit: the whole part, at least one."""
    return max(1, int(cpu_cores(quantity)))
