"""vLLM's Prometheus text → the numbers rollout analysis needs (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class ReplicaLoad:
    requests: int = 0
    """API responses on /v1 routes (http_requests_total)."""
    errors: int = 0
    """Of those, 5xx."""
    running: float = 0.0
    """vllm:num_requests_running."""
    waiting: float = 0.0
    """vllm:num_requests_waiting."""

    def __add__(self, other: ReplicaLoad) -> ReplicaLoad:
        return ReplicaLoad(self.requests + other.requests, self.errors + other.errors,
                           self.running + other.running, self.waiting + other.waiting)


def parse_vllm_metrics(text: str) -> ReplicaLoad:
    load = ReplicaLoad()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("handler", "").startswith("/v1/"):
                load.requests += int(sample.value)
                if sample.labels.get("status", "").startswith("5"):
                    load.errors += int(sample.value)
            elif sample.name == "vllm:num_requests_running":
                load.running += sample.value
            elif sample.name == "vllm:num_requests_waiting":
                load.waiting += sample.value
    return load
