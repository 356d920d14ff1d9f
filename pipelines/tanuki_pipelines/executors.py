"""Where a stage's independent tasks (JSON-able dicts, one per shard) run: in this process, a
spawned local process pool, or Ray Data tasks on a cluster whose workers mount the same volume.
``function`` is a module-level function of one task returning a JSON-able dict (its stats)."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from typing import Any

Task = dict[str, Any]


def run_local(function: Callable[[Task], dict[str, Any]], tasks: list[Task], workers: int,
              on_done: Callable[[dict[str, Any]], None], initializer: Callable[..., None] | None = None,
              initargs: tuple[Any, ...] = ()) -> None:
    """In this process (one worker) or a spawned process pool: a library used before a fork (a
    tokenizer's thread pool, torch) turns its parallelism off in forked children, and spawned workers
    never share the parent's state."""
    if workers <= 1:
        for task in tasks:
            on_done(function(task))
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=initializer,
                             initargs=initargs) as pool:
        futures = [pool.submit(function, task) for task in tasks]
        try:
            for future in as_completed(futures):
                on_done(future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _ray_row(row: dict[str, Any], function: Callable[[Task], dict[str, Any]]) -> dict[str, Any]:
    return {"stats": json.dumps(function(json.loads(row["task"])), ensure_ascii=False)}


def run_ray(function: Callable[[Task], dict[str, Any]], tasks: list[Task], address: str | None,
            on_done: Callable[[dict[str, Any]], None]) -> None:
    """Ray Data tasks, one per task (``address``: a cluster, or None for an in-process Ray)."""
    from tanuki_pipelines.ray_session import ray_session

    with ray_session(address) as ray:
        ray.data.DataContext.get_current().enable_progress_bars = False
        rows = [{"task": json.dumps(task, ensure_ascii=False)} for task in tasks]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
            _ray_row, fn_kwargs={"function": function}, num_cpus=1)
        for row in dataset.iter_rows():
            on_done(json.loads(row["stats"]))
