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


LATENCY_HISTOGRAMS = {"time_to_first_token": "vllm:time_to_first_token_seconds",
                      "inter_token_latency": "vllm:inter_token_latency_seconds"}
"""Measure → the vLLM histogram it is read from."""

Histograms = dict[str, dict[str, float]]
"""Measure → upper bound of a bucket (Prometheus ``le``, as text) → cumulative count."""


def parse_latency_histograms(text: str) -> Histograms:
    """The cumulative buckets of vLLM's latency histograms in one replica's /metrics (every model
    and engine label summed)."""
    found: Histograms = {measure: {} for measure in LATENCY_HISTOGRAMS}
    names = {f"{name}_bucket": measure for measure, name in LATENCY_HISTOGRAMS.items()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            measure = names.get(sample.name)
            if measure is not None:
                bound = sample.labels.get("le", "+Inf")
                found[measure][bound] = found[measure].get(bound, 0.0) + sample.value
    return found


def add_histograms(first: Histograms, second: Histograms) -> Histograms:
    return {measure: {bound: first.get(measure, {}).get(bound, 0.0) + second.get(measure, {}).get(bound, 0.0)
                      for bound in {*first.get(measure, {}), *second.get(measure, {})}}
            for measure in {*first, *second}}


def subtract_histograms(now: Histograms, before: Histograms) -> Histograms:
    """What was observed between two readings of the same replicas (a replica that restarted, or
    one that is gone, counts from zero: no bucket goes below zero)."""
    return {measure: {bound: max(count - before.get(measure, {}).get(bound, 0.0), 0.0)
                      for bound, count in buckets.items()}
            for measure, buckets in now.items()}


def histogram_quantile(quantile: float, buckets: dict[str, float]) -> float | None:
    """Prometheus's ``histogram_quantile``: the bucket holding the quantile, linearly interpolated
    inside it (None without observations; the highest finite bound when it falls in +Inf)."""
    ordered = sorted((float(bound), count) for bound, count in buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = quantile * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def observations(buckets: dict[str, float]) -> float:
    """How many observations a histogram holds (its +Inf bucket)."""
    return buckets.get("+Inf", max(buckets.values(), default=0.0))
