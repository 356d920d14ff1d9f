"""Prometheus metrics of the operator, served on ``$TANUKI_METRICS_PORT`` (default 9090)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()
RECONCILES = Counter("tanuki_reconciles_total", "Reconciliations by kind and result",
                     ["kind", "result"], registry=REGISTRY)
ERRORS = Counter("tanuki_reconcile_errors_total", "Reconciliations that raised, by kind",
                 ["kind"], registry=REGISTRY)
PHASES = Gauge("tanuki_resources", "Resources by kind and phase", ["kind", "phase"], registry=REGISTRY)
LATENCY = Histogram("tanuki_reconcile_seconds", "Time of one reconciliation", ["kind"], registry=REGISTRY)

_phase_of: dict[tuple[str, str, str], str] = {}


def record_phase(kind: str, namespace: str, name: str, phase: str | None) -> None:
    """Keep the per-phase gauge equal to the number of resources in each phase."""
    key = (kind, namespace, name)
    previous = _phase_of.pop(key, None)
    if previous is not None:
        PHASES.labels(kind, previous).dec()
    if phase is not None:
        _phase_of[key] = phase
        PHASES.labels(kind, phase).inc()


def serve(port: int) -> None:
    start_http_server(port, registry=REGISTRY)
