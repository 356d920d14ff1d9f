"""vLLM engine settings of a ModelServer (pydantic only: no vllm import)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
