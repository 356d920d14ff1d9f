"""Engine ``vllm``: shards flow through Ray Data to actors that each hold one ``vllm.LLM`` — or, for
one engine on one machine (``ray.mode: process``, or ``auto`` with one worker), through the same
``ShardWorker`` in the job's own process, where Ray would only cost.

One dataset row is one shard; an actor generates the whole shard (every round, batched) and
returns its records, which the driver writes as the rows arrive. The same code runs in one pod
(an in-process Ray: ``ray.mode: local``) and on a KubeRay cluster (``--ray-address auto``), where
``ray.workers`` engine actors each take ``tensor_parallel_size`` GPUs. Before any work starts the
driver waits, at most ``ray.start_timeout_seconds``, for the cluster to have room for one engine,
so a request Ray can never place is an error instead of a silent hang.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.ray_session import ray_session
from tanuki_pipelines.synth.config import GeneratorModel, RayConfig
from tanuki_pipelines.synth.engine_job import EngineJob

ENGINE_FAILED = "vLLM could not start on"
"""Marks an engine actor's start-up failure in the error Ray hands back to the driver."""


def cpu_engine_threads(node_cpus: float, engines: int, cpus_per_engine: float = 1.0,
                       threads_per_engine: int | None = None) -> int:
    """Torch threads of one CPU engine (pure): the recipe's number, else the node's cores shared evenly
    among the engines it can hold (at most ``engines``, at most one per ``cpus_per_engine``)."""
    if threads_per_engine is not None:
        return threads_per_engine
    sharing = max(1, min(engines, int(node_cpus // cpus_per_engine)))
    return max(1, int(node_cpus) // sharing)


def node_cpus() -> float:
    """The CPUs of the Ray node this process runs on (a KubeRay pod's limit, or this machine)."""
    import ray

    node = ray.get_runtime_context().get_node_id()
    return next((n["Resources"].get("CPU", 1.0) for n in ray.nodes() if n["NodeID"] == node),
                float(len(os.sched_getaffinity(0))))


class ShardWorker:
    """A Ray Data actor: loads the generator once, then generates whole shards with the job's runner."""

    def __init__(self, generator_json: str, seed: int, runner: str, settings_json: str, on_gpu: bool,
                 ray_json: str, engines: int, cores: float | None = None) -> None:
        """``cores``: the CPUs the engines share; None: the Ray node's (``node_cpus``)."""
        self.threads: int | None = None
        if not on_gpu:
            from tanuki_common.cpu_vllm import set_cpu_vllm_defaults

            set_cpu_vllm_defaults(os.environ)
            self.threads = self._use_cpu_threads(RayConfig.model_validate_json(ray_json), engines,
                                                 node_cpus() if cores is None else cores)
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # per-engine start-up chatter, once per actor
        from vllm import LLM

        from tanuki_pipelines.synth.engine_job import load_runner
        from tanuki_pipelines.synth.engines import vllm_engine_args, vllm_generate

        generator = GeneratorModel.model_validate_json(generator_json)
        arguments = vllm_engine_args(generator, seed, on_gpu)
        try:
            llm = LLM(**arguments)
        except Exception as exc:  # vLLM's own errors may not pickle: hand Ray a plain one with the reason
            raise RuntimeError(f"{ENGINE_FAILED} {generator.path}: {root_cause(exc, arguments)}") from None
        self.generate = vllm_generate(llm, generator.max_model_len)
        self.runner, self.settings_json = load_runner(runner), settings_json

    @staticmethod
    def _use_cpu_threads(ray_config: RayConfig, engines: int, cores: float) -> int:
        """Give this engine its share of the node's cores. Ray starts an actor with OMP_NUM_THREADS set
        to the CPUs it reserved (1 by default). OpenMP reads that once, when torch loads, as the thread
        count of every thread: vLLM's CPU attention plans its work on one thread and runs it on
        another, and fails when their counts differ, so ``torch.set_num_threads`` alone is not enough
        (and vLLM's worker forbids it once the engine exists). So: the variable first, then torch."""
        import sys

        threads = cpu_engine_threads(cores, engines, ray_config.cpus_per_worker, ray_config.threads_per_worker)
        if "torch" in sys.modules:  # too late to change OpenMP's default: keep what Ray set, consistently
            import torch

            print(f"[tanuki] torch was loaded before the engine: it keeps {torch.get_num_threads()} thread(s)",
                  flush=True)
            return torch.get_num_threads()
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)
        return threads

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        shard_ids, outputs, seconds = [], [], []
        for shard_id, items in zip(batch["shard"], batch["items"], strict=True):
            started = time.monotonic()
            records = self.runner(json.loads(items), self.settings_json, self.generate)
            seconds.append(time.monotonic() - started)
            shard_ids.append(int(shard_id))
            outputs.append(json.dumps(records, ensure_ascii=False))
        return {"shard": shard_ids, "records": outputs, "seconds": seconds,
                "threads": [self.threads or 0] * len(shard_ids)}


def root_cause(exc: Exception, arguments: dict[str, Any]) -> str:
    """vLLM's reason for failing to start. When its engine-core process failed, the exception only
    says "see root cause above" (the cause went to that process's log): build the engine once more
    in this process, where the same failure raises with its cause."""
    if "root cause" in str(exc):
        from vllm import LLM

        previous = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        try:
            LLM(**arguments)
        except Exception as again:
            exc = again
        finally:
            if previous is None:
                os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING")
            else:
                os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = previous
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}"


def engine_resources(generator: GeneratorModel, ray: RayConfig, on_gpu: bool) -> dict[str, float]:
    """What one engine actor asks Ray for (pure)."""
    if on_gpu:
        return {"CPU": ray.cpus_per_worker, "GPU": float(generator.tensor_parallel_size)}
    return {"CPU": ray.cpus_per_worker}


def wait_for_room(need: dict[str, float], timeout: float, resources: Callable[[], dict[str, float]],
                  sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once the cluster's total resources cover one engine; raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        have = resources()
        if all(have.get(name, 0) >= amount for name, amount in need.items()):
            return
        if time.monotonic() >= deadline:
            raise BadInputError(f"ray: no node can run a vLLM engine after {timeout:.0f} s: one needs {need}, the "
                                f"cluster has {({k: v for k, v in have.items() if k in ('CPU', 'GPU')})} "
                                "(ray.workers, generator.tensor_parallel_size, the RayJob's workerGpus)")
        sleep(5)


def engine_start_failure(exc: Exception) -> BadInputError | None:
    """The user's error in an engine's failure to start (the ``ShardWorker``'s own, or as Ray hands it
    back wrapped), naming ``generator.path``; None when the failure is something else."""
    text = str(exc)
    if ENGINE_FAILED not in text:
        return None
    return BadInputError("generator.path: " + text[text.index(ENGINE_FAILED):].splitlines()[0])


def has_gpu() -> bool:
    """Whether this machine exposes an NVIDIA GPU (its device files), asked without loading torch: on
    CPU the engine must set OpenMP's threads before torch loads."""
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def generate_in_process(pending: dict[int, list[dict[str, Any]]], job: EngineJob,
                        on_shard: Callable[[int, list[dict[str, Any]], float, int | None], None]) -> None:
    """``ray.mode: process``: the one engine in this process, shard after shard, on this machine's cores."""
    on_gpu = has_gpu()
    try:
        worker = ShardWorker(job.generator.model_dump_json(), job.seed, job.runner, job.settings_json, on_gpu,
                             job.ray.model_dump_json(), 1, cores=float(len(os.sched_getaffinity(0))))
    except RuntimeError as exc:
        if (failure := engine_start_failure(exc)) is None:
            raise
        raise failure from None
    for shard, items in pending.items():
        done = worker({"shard": [shard], "items": [json.dumps(items, ensure_ascii=False)]})
        on_shard(shard, json.loads(done["records"][0]), float(done["seconds"][0]), int(done["threads"][0]) or None)


def generate_on_ray(pending: dict[int, list[dict[str, Any]]], job: EngineJob, address: str | None,
                    on_shard: Callable[[int, list[dict[str, Any]], float, int | None], None]) -> None:
    """Generate every pending shard; ``on_shard(shard, records, engine seconds, engine threads or None
    on GPU)`` as each one arrives."""
    with ray_session(address) as ray:
        # a RayJob's GPU workers may join after the head: cluster mode waits for them
        on_gpu = ray.cluster_resources().get("GPU", 0) > 0 or (address is not None and job.ray.mode == "cluster")
        need = engine_resources(job.generator, job.ray, on_gpu)
        wait_for_room(need, job.ray.start_timeout_seconds, ray.cluster_resources)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        rows = [{"shard": shard, "items": json.dumps(items, ensure_ascii=False)} for shard, items in pending.items()]
        engines = min(job.ray.workers, len(rows))
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            ShardWorker, fn_constructor_kwargs={"generator_json": job.generator.model_dump_json(), "seed": job.seed,
                                                "runner": job.runner, "settings_json": job.settings_json,
                                                "on_gpu": on_gpu, "ray_json": job.ray.model_dump_json(),
                                                "engines": engines},
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=engines),
            num_cpus=need["CPU"], num_gpus=need.get("GPU", 0))
        try:
            for row in dataset.iter_rows():
                on_shard(int(row["shard"]), json.loads(row["records"]), float(row["seconds"]),
                         int(row["threads"]) or None)
        except Exception as exc:
            if (failure := engine_start_failure(exc)) is None:
                raise
            raise failure from None
