"""vLLM engine settings of a ModelServer (pydantic only: no vllm import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EngineConfig(BaseModel):
    """How each vLLM replica runs the model."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    served_model_name: str | None = None
    """Name clients put in ``model``; defaults to the ModelServer's name."""
    max_model_len: int = Field(default=4096, ge=16)
    """Longest context (prompt + completion) a request may use."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """Weight and activation dtype."""
    tensor_parallel_size: int = Field(default=1, ge=1)
    """GPUs one replica shards the model across."""
    pipeline_parallel_size: int = Field(default=1, ge=1)
    """Pipeline stages per replica."""
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    """Share of GPU memory vLLM may take (weights + KV cache)."""
    enable_prefix_caching: bool = True
    """Reuse KV cache across requests sharing a prefix."""
    max_num_seqs: int | None = Field(default=None, ge=1)
    """Cap on concurrently running sequences."""
    extra_args: list[str] = Field(default_factory=list)
    """Further ``vllm serve`` arguments, appended verbatim."""


RoutingPolicy = Literal["round_robin", "power_of_two", "cache_aware", "consistent_hash", "random"]


class RouterConfig(BaseModel):
    """The vllm-router front door in front of the replicas."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    policy: RoutingPolicy = "cache_aware"
    """How the router picks a replica (cache_aware: prefix-cache affinity, falling back to load)."""
    replicas: int = Field(default=1, ge=1)
    """Router pods (the router is stateless apart from its prefix tree)."""
    maxRetries: int = Field(default=5, ge=0)
    """Retries of a request after a connection error or 5xx from a replica."""
    circuitBreakerFailures: int = Field(default=3, ge=1)
    """Consecutive failures after which the router stops sending to a replica for a while."""
    healthCheckIntervalSeconds: int = Field(default=10, ge=1)
    """How often the router probes each replica's /health."""
    requestTimeoutSeconds: int = Field(default=600, ge=1)
    """Longest a proxied request may take."""
    port: int = Field(default=8080, ge=1, le=65535)
    """Port the router listens on (the local runner binds it on 127.0.0.1)."""
    metricsPort: int = Field(default=29000, ge=1, le=65535)
    """Port of the router's Prometheus metrics."""


class Analysis(BaseModel):
    """What a canary must show before it gets more traffic."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    maxErrorRate: float = Field(default=0.01, ge=0, le=1)
    """Highest share of canary API responses that may be 5xx (from vLLM's http_requests_total)."""
    minRequests: int = Field(default=0, ge=0)
    """Canary requests needed before the error rate counts (0: judge on readiness and smoke prompts)."""
    smokePrompts: list[str] = Field(default_factory=list)
    """Chat prompts sent to each canary replica; each must answer 200 with a non-empty choice."""
    readyTimeoutSeconds: int = Field(default=900, ge=1)
    """A canary not ready within this is rolled back (a checkpoint vLLM cannot load)."""
    maxRestarts: int = Field(default=0, ge=0)
    """Container restarts of canary pods tolerated before rolling back."""


class RolloutPolicy(BaseModel):
    """How a new checkpoint replaces the serving one."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    steps: list[int] = Field(default_factory=lambda: [50], min_length=1)
    """Canary traffic shares in percent, by replica ratio behind the router; after the last the canary is promoted."""
    pauseSeconds: int = Field(default=30, ge=0)
    """How long the canary serves each step, healthy, before the next."""
    analysis: Analysis = Field(default_factory=Analysis)
    """Health checks between steps."""
    autoRollback: bool = True
    """Roll back a failing canary automatically (false: hold it at its step for a person to decide)."""

    @field_validator("steps")
    @classmethod
    def _increasing_shares(cls, steps: list[int]) -> list[int]:
        if any(not 0 < share < 100 for share in steps):
            raise ValueError("each step is a canary share strictly between 0 and 100 percent")
        if steps != sorted(set(steps)):
            raise ValueError("steps must increase")
        return steps
