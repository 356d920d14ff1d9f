"""What generates a stage's shards (``EngineJob``) and how a runner is found by name: read both by
the shard loop (``shards``) and by the Ray actors (``ray_engine``), which therefore need not import
each other."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tanuki_pipelines.synth.config import EndpointEngine, GeneratorModel, RayConfig


def load_runner(name: str) -> Callable[..., list[dict[str, Any]]]:
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class EngineJob:
    """What generates the shards."""

    engine: str
    """``vllm`` (``vllm.LLM`` in this process or in Ray Data actors, see ``runs_in_process``) or ``endpoint``."""
    generator: GeneratorModel
    ray: RayConfig
    endpoint: EndpointEngine | None
    seed: int
    runner: str
    """``module:function`` generating one shard."""
    settings_json: str
    """The stage's recipe, as the runner reads it."""


def runs_in_process(ray: RayConfig, ray_address: str | None) -> bool:
    """Whether the engine runs in the job's own process rather than on Ray (pure): never with a Ray
    address (a cluster's); with ``mode: process``, or ``auto`` and one worker."""
    return ray_address is None and (ray.mode == "process" or (ray.mode == "auto" and ray.workers == 1))
