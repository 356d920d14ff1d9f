"""Batch generation in shards, shared by ``tanuki synth`` and the DPO answer step.

Work items are cut into shards; each shard is generated whole by a *runner*
(``runner(items, settings_json, generate) -> records``, named ``module:function`` so Ray actors can
import it) over either engine: vLLM in Ray Data actors or an OpenAI-compatible endpoint. A finished
shard is written durably under ``directory``; a rerun skips the shards present, and a plan
fingerprint refuses to mix shards of a changed plan.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_common.jsonl import jsonl
from tanuki_pipelines.synth.engine_job import EngineJob, load_runner, runs_in_process


class ShardWriter:
    """Writes each finished shard durably and prints progress (records/s, generated tokens/s).
    ``engine_seconds`` adds up the engines' own time on the shards (no start-up, no waiting);
    ``engine_threads`` the torch threads CPU engines ran with."""

    def __init__(self, directory: Path, total: int, done: int, label: str) -> None:
        self.directory, self.total, self.done, self.label = directory, total, done, label
        self.records = self.tokens = 0
        self.engine_seconds = 0.0
        self.engine_threads: set[int] = set()
        self.started = time.monotonic()

    def path(self, shard: int) -> Path:
        return self.directory / f"shard-{shard:05d}.jsonl"

    def __call__(self, shard: int, records: list[dict[str, Any]], engine_seconds: float,
                 engine_threads: int | None = None) -> None:
        from tanuki_pipelines.outputs import format_progress
        from tanuki_pipelines.publish import fault_point, write_durable

        write_durable(self.path(shard), jsonl(records))
        self.done += 1
        self.records += len(records)
        self.engine_seconds += engine_seconds
        if engine_threads:
            self.engine_threads.add(engine_threads)
        self.tokens += sum(record.get("generated_tokens", 0) for record in records)
        seconds = max(time.monotonic() - self.started, 1e-9)
        print(f"[tanuki {self.label}] shard {shard} written ({self.done}/{self.total}): {self.records / seconds:.2f} "
              f"records/s, {self.tokens / seconds:.1f} generated tokens/s", flush=True)
        print(format_progress(self.done, self.total, tokens=self.tokens), flush=True)
        fault_point(f"{self.label}:after-shard")

    def stats(self, seconds: float) -> dict[str, Any]:
        return {"generated_tokens": self.tokens, "generated_records": self.records, "seconds": round(seconds, 2),
                "records_per_second": round(self.records / seconds, 3) if self.records else None,
                "tokens_per_second": round(self.tokens / seconds, 1) if self.records else None,
                "engine_seconds": round(self.engine_seconds, 2),
                "engine_tokens_per_second": round(self.tokens / self.engine_seconds, 1) if self.engine_seconds
                else None,
                "engine_threads": max(self.engine_threads) if self.engine_threads else None}


def generate_shards(planned: list[list[dict[str, Any]]], directory: Path, label: str, job: EngineJob,
                    ray_address: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate the shards not yet written; every shard's records in plan order, and the run's stats."""
    from tanuki_pipelines.publish import write_durable

    ids = [[item["id"] for item in shard] for shard in planned]
    fingerprint = hashlib.sha256(json.dumps(ids).encode()).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    plan_file = directory / "plan.json"
    if plan_file.is_file() and json.loads(plan_file.read_text())["fingerprint"] != fingerprint:
        raise BadInputError(f"{directory}: holds shards of another plan (inputs, counts, shard_size or seed "
                            "changed); use another --output-dir or remove that directory")
    write_durable(plan_file, json.dumps({"fingerprint": fingerprint, "shards": len(planned),
                                         "items": sum(map(len, planned))}))
    writer = ShardWriter(directory, len(planned), 0, label)
    pending = {index: shard for index, shard in enumerate(planned) if not writer.path(index).is_file()}
    writer.done = len(planned) - len(pending)
    print(f"[tanuki {label}] {sum(map(len, planned))} work items in {len(planned)} shards; {len(pending)} to generate",
          flush=True)
    started = time.monotonic()
    if pending and job.engine == "endpoint":
        from tanuki_pipelines.synth.engines import endpoint_generate

        if job.endpoint is None:  # the recipes' validators require one with engine endpoint
            raise BadInputError("endpoint: required with engine endpoint")
        engine, runner = endpoint_generate(job.endpoint), load_runner(job.runner)
        for index, shard in pending.items():
            shard_started = time.monotonic()
            records = runner(shard, job.settings_json, engine)
            writer(index, records, time.monotonic() - shard_started)
    elif pending and runs_in_process(job.ray, ray_address):
        from tanuki_pipelines.synth.ray_engine import generate_in_process

        generate_in_process(pending, job, writer)
    elif pending:
        from tanuki_pipelines.synth.ray_engine import generate_on_ray

        generate_on_ray(pending, job, ray_address, writer)
    records = [json.loads(line) for index in range(len(planned))
               for line in writer.path(index).read_text(encoding="utf-8").splitlines()]
    return records, writer.stats(time.monotonic() - started)
