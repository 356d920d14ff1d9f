"""vLLM's latency histograms → the latency gate's figures: buckets summed over replicas, a window
as the difference of two readings, and the quantile as Prometheus's histogram_quantile gives it."""

from __future__ import annotations

import pytest

from tanuki_serving.metrics import (
    add_histograms,
    histogram_quantile,
    observations,
    parse_latency_histograms,
    subtract_histograms,
)

METRICS = """# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="m"} 50.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.2",model_name="m"} 90.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.4",model_name="m"} 100.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 100.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 100.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 12.0
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.01",model_name="m"} 10.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="m"} 20.0
# TYPE http_requests_total counter
http_requests_total{handler="/v1/chat/completions",method="POST",status="2xx"} 100.0
"""


def test_histograms_are_read_summed_and_windowed() -> None:
    one = parse_latency_histograms(METRICS)
    assert one["time_to_first_token"]["0.2"] == 90 and observations(one["time_to_first_token"]) == 100
    two = add_histograms(one, one)
    assert two["inter_token_latency"] == {"0.01": 20, "+Inf": 40}
    window = subtract_histograms(two, one)
    assert window == one
    restarted = subtract_histograms(one, two)  # a replica that restarted counts from zero, never below
    assert all(count == 0 for buckets in restarted.values() for count in buckets.values())


def test_quantiles_interpolate_inside_the_bucket_as_prometheus_does() -> None:
    buckets = parse_latency_histograms(METRICS)["time_to_first_token"]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.3)  # 0.2 + 0.2 × (95 − 90)/(100 − 90)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)
    tail = {"0.01": 10, "+Inf": 20}
    assert histogram_quantile(0.95, tail) == pytest.approx(0.01)  # in +Inf: the highest finite bound
    assert histogram_quantile(0.95, {"0.1": 0, "+Inf": 0}) is None and histogram_quantile(0.95, {}) is None
