"""Pure pieces of serving: the router command line, vLLM metric parsing, load-report statistics."""

from __future__ import annotations

import pytest

from tanuki_common.cpu_vllm import set_cpu_vllm_defaults
from tanuki_serving.config import RouterConfig
from tanuki_serving.launch import router_command
from tanuki_serving.loadgen import Result, percentiles, summarize
from tanuki_serving.metrics import parse_vllm_metrics


def test_router_command_static_workers_and_service_discovery() -> None:
    config = RouterConfig(policy="power_of_two", port=9000, maxRetries=5)
    static = router_command(config, host="127.0.0.1", worker_urls=["http://a:1", "http://b:2"])
    assert static[:5] == ["vllm-router", "--host", "127.0.0.1", "--port", "9000"]
    assert static[static.index("--policy") + 1] == "power_of_two"
    assert static[static.index("--retry-max-retries") + 1] == "5"
    assert static[static.index("--worker-urls") + 1:] == ["http://a:1", "http://b:2"]
    discovery = router_command(config, selector={"b": "2", "a": "1"}, namespace="ml", worker_port=8000)
    at = discovery.index("--selector")
    assert discovery[at + 1:at + 3] == ["a=1", "b=2"] and "--worker-urls" not in discovery
    assert discovery[discovery.index("--service-discovery-namespace") + 1] == "ml"
    with pytest.raises(ValueError):
        router_command(config)


def test_cpu_vllm_defaults_fill_only_what_the_environment_leaves_unset() -> None:
    env = {"VLLM_CPU_KVCACHE_SPACE": "8", "PATH": "/bin"}
    set_cpu_vllm_defaults(env)
    assert env == {"VLLM_CPU_KVCACHE_SPACE": "8", "PATH": "/bin", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def test_parse_vllm_metrics_counts_api_responses_and_queue() -> None:
    text = """# TYPE http_requests_total counter
http_requests_total{handler="/v1/chat/completions",method="POST",status="2xx"} 40.0
http_requests_total{handler="/v1/completions",method="POST",status="5xx"} 2.0
http_requests_total{handler="/v1/models",method="GET",status="4xx"} 3.0
http_requests_total{handler="/health",method="GET",status="2xx"} 500.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
"""
    load = parse_vllm_metrics(text)
    assert (load.requests, load.errors, load.running, load.waiting) == (45, 2, 3.0, 1.0)


def test_load_report_percentiles_and_failures() -> None:
    results = [Result(True, latency=i / 100, ttft=i / 1000, output_tokens=10) for i in range(1, 101)]
    results += [Result(False, 0.5, None, 0, "HTTP 503"), Result(False, 0.5, None, 0, "HTTP 503")]
    report = summarize(results, duration=10.0)
    assert report.requests == 102 and report.failed == 2 and report.errors == {"HTTP 503": 2}
    assert report.latency_s["p50"] == pytest.approx(0.505) and report.latency_s["p99"] == pytest.approx(0.9901)
    assert report.output_tokens_per_s == pytest.approx(100.0) and report.requests_per_s == pytest.approx(10.0)
    assert percentiles([]) == {} and percentiles([2.0])["p99"] == 2.0
