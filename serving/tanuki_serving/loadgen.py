"""OpenAI-API load generator: throughput, TTFT and latency percentiles, failed requests.

``tanuki loadgen --base-url http://127.0.0.1:8080/v1 --model debug-chat --concurrency 4 --rate 2
--duration 30 --stream`` drives chat completions against any OpenAI-compatible endpoint (vLLM,
vllm-router, a ModelServer Service) and prints a JSON report. Benchmarks and the rollout tests use
``run_load`` directly, with a ``stop`` event to run until told otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PROMPTS = [
    "日本の首都はどこですか？",
    "富士山について短く説明してください。",
    "Write one sentence about Kyoto.",
    "3 + 4 は？",
    "おすすめの本を一冊教えてください。",
    "What is a tanuki?",
]


@dataclass
class LoadConfig:
    base_url: str
    """OpenAI API root, e.g. ``http://127.0.0.1:8080/v1``."""
    model: str
    """Served model name."""
    api_key: str | None = None
    """Bearer token (default: $OPENAI_API_KEY)."""
    concurrency: int = 4
    """Requests in flight at most."""
    rate: float | None = None
    """Requests started per second (Poisson arrivals); None: as fast as concurrency allows."""
    requests: int | None = None
    """Stop after this many requests (None: run for ``duration`` or until ``stop`` is set)."""
    duration: float | None = None
    """Stop starting requests after this many seconds."""
    prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PROMPTS))
    """User messages, used round robin."""
    max_tokens: int = 16
    """Completion length per request."""
    stream: bool = True
    """Stream responses (TTFT is then the first content chunk; otherwise it equals the latency)."""
    timeout: float = 120.0
    """Per-request timeout in seconds."""
    seed: int = 0
    """Seed of the arrival process."""


@dataclass
class Result:
    ok: bool
    latency: float
    ttft: float | None
    output_tokens: int
    error: str | None = None
    started: float = 0.0


@dataclass
class Report:
    requests: int
    failed: int
    errors: dict[str, int]
    duration_s: float
    requests_per_s: float
    output_tokens_per_s: float
    ttft_s: dict[str, float]
    latency_s: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    if len(values) == 1:
        return {"p50": values[0], "p90": values[0], "p99": values[0], "mean": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "mean": statistics.fmean(values)}


def summarize(results: list[Result], duration: float) -> Report:
    ok = [r for r in results if r.ok]
    errors = Counter(r.error or "unknown" for r in results if not r.ok)
    duration = max(duration, 1e-9)
    return Report(
        requests=len(results),
        failed=len(results) - len(ok),
        errors=dict(errors),
        duration_s=duration,
        requests_per_s=len(ok) / duration,
        output_tokens_per_s=sum(r.output_tokens for r in ok) / duration,
        ttft_s=percentiles([r.ttft for r in ok if r.ttft is not None]),
        latency_s=percentiles([r.latency for r in ok]),
    )


async def one_request(client: Any, config: LoadConfig, prompt: str) -> Result:
    body = {"model": config.model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": config.max_tokens, "temperature": 0.7, "stream": config.stream}
    if config.stream:
        body["stream_options"] = {"include_usage": True}
    start = time.perf_counter()
    ttft = None
    tokens = 0
    try:
        if not config.stream:
            response = await client.post("/chat/completions", json=body)
            if response.status_code != 200:
                return Result(False, time.perf_counter() - start, None, 0, f"HTTP {response.status_code}", start)
            payload = response.json()
            latency = time.perf_counter() - start
            if not payload.get("choices"):
                return Result(False, latency, None, 0, "no choices", start)
            return Result(True, latency, latency, (payload.get("usage") or {}).get("completion_tokens", 0), None, start)
        async with client.stream("POST", "/chat/completions", json=body) as response:
            if response.status_code != 200:
                await response.aread()
                return Result(False, time.perf_counter() - start, None, 0, f"HTTP {response.status_code}", start)
            finished = False
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                if data == "[DONE]":
                    finished = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    return Result(False, time.perf_counter() - start, ttft, tokens, "stream error", start)
                for choice in chunk.get("choices") or []:
                    if ttft is None and (choice.get("delta") or {}).get("content"):
                        ttft = time.perf_counter() - start
                if chunk.get("usage"):
                    tokens = chunk["usage"].get("completion_tokens", tokens)
            if not finished:
                return Result(False, time.perf_counter() - start, ttft, tokens, "stream cut", start)
            return Result(True, time.perf_counter() - start, ttft, tokens, None, start)
    except Exception as exc:  # a failed request is data here, whatever the transport raised
        return Result(False, time.perf_counter() - start, ttft, tokens, type(exc).__name__, start)


async def run_load(config: LoadConfig, stop: asyncio.Event | threading.Event | None = None) -> Report:
    """Drive load until ``requests``/``duration`` is reached or ``stop`` is set (an asyncio or a
    threading Event: it is polled between requests); wait for what is in flight."""
    import httpx

    api_key = config.api_key or os.environ.get("OPENAI_API_KEY")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    rng = random.Random(config.seed)
    results: list[Result] = []
    slots = asyncio.Semaphore(config.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency)
    async with httpx.AsyncClient(base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout,
                                 limits=limits) as client:
        began = time.perf_counter()

        async def fire(prompt: str) -> None:
            try:
                results.append(await one_request(client, config, prompt))
            finally:
                slots.release()

        sent = 0
        while True:
            if stop is not None and stop.is_set():
                break
            if config.requests is not None and sent >= config.requests:
                break
            if config.duration is not None and time.perf_counter() - began >= config.duration:
                break
            await slots.acquire()
            task = asyncio.create_task(fire(config.prompts[sent % len(config.prompts)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            if config.rate:
                await asyncio.sleep(rng.expovariate(config.rate))
        if tasks:
            await asyncio.gather(*tasks)
        return summarize(results, time.perf_counter() - began)


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--base-url", required=True, help="OpenAI API root, e.g. http://127.0.0.1:8080/v1")
    parser.add_argument("--model", required=True, help="served model name")
    parser.add_argument("--api-key", default=None, help="bearer token (default: $OPENAI_API_KEY)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rate", type=float, default=None, help="requests per second (default: unpaced)")
    parser.add_argument("--requests", type=int, default=None, help="total requests")
    parser.add_argument("--duration", type=float, default=None, help="seconds to keep starting requests")
    parser.add_argument("--prompts", type=Path, default=None, help="text file, one prompt per line")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--no-stream", action="store_true", help="plain (non-streaming) responses")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_common.errors import BadInputError

    if args.concurrency < 1:
        raise BadInputError("--concurrency must be at least 1")
    if args.requests is None and args.duration is None:
        raise BadInputError("give --requests or --duration")
    prompts = list(DEFAULT_PROMPTS)
    if args.prompts is not None:
        if not args.prompts.is_file():
            raise BadInputError(f"--prompts: no such file: {args.prompts}")
        prompts = [line for line in args.prompts.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not prompts:
            raise BadInputError(f"--prompts: {args.prompts} has no prompts")
    config = LoadConfig(base_url=args.base_url, model=args.model, api_key=args.api_key, concurrency=args.concurrency,
                        rate=args.rate, requests=args.requests, duration=args.duration, prompts=prompts,
                        max_tokens=args.max_tokens, stream=not args.no_stream)
    report = asyncio.run(run_load(config))
    print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
    return 0 if report.failed == 0 else 1
