"""Prometheus metrics of the operator, served on ``$TANUKI_METRICS_PORT`` (default 9090)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tanuki_serving.rollout import RolloutState, TrackReplicas, TrafficShare

REGISTRY = CollectorRegistry()
RECONCILES = Counter("tanuki_reconciles_total", "Reconciliations by kind and result",
                     ["kind", "result"], registry=REGISTRY)
ERRORS = Counter("tanuki_reconcile_errors_total", "Reconciliations that raised, by kind",
                 ["kind"], registry=REGISTRY)
PHASES = Gauge("tanuki_resources", "Resources by kind and phase", ["kind", "phase"], registry=REGISTRY)
LATENCY = Histogram("tanuki_reconcile_seconds", "Time of one reconciliation", ["kind"], registry=REGISTRY)

SERVER_REPLICAS = Gauge("tanuki_modelserver_replicas", "Ready vLLM replicas per ModelServer and track",
                        ["namespace", "name", "track"], registry=REGISTRY)
TRAFFIC_SHARE = Gauge("tanuki_modelserver_traffic_share", "Percent of requests per ModelServer track",
                      ["namespace", "name", "track"], registry=REGISTRY)
CANARY_STEP = Gauge("tanuki_modelserver_canary_step", "Index of the canary's rollout step (-1: no canary)",
                    ["namespace", "name"], registry=REGISTRY)
ROLLOUTS = Counter("tanuki_modelserver_rollouts", "Finished rollouts by result (Promoted, RolledBack, Superseded)",
                   ["namespace", "name", "result"], registry=REGISTRY)

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


def record_rollout(namespace: str, name: str, before: RolloutState, after: RolloutState) -> None:
    """Export a ModelServer's rollout status; rollouts that finished since ``before`` count once."""
    share = after.trafficShare or TrafficShare(stable=0)
    ready = after.readyReplicas or TrackReplicas()
    for track in ("stable", "canary"):
        TRAFFIC_SHARE.labels(namespace, name, track).set(getattr(share, track))
        SERVER_REPLICAS.labels(namespace, name, track).set(getattr(ready, track))
    CANARY_STEP.labels(namespace, name).set(after.canary.step if after.canary else -1)
    seen = {(r.revision, r.time, r.result) for r in before.history}
    for record in after.history:
        if (record.revision, record.time, record.result) not in seen:
            ROLLOUTS.labels(namespace, name, record.result).inc()


def serve(port: int) -> None:
    start_http_server(port, registry=REGISTRY)
