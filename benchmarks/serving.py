"""Serving: checkpoint-ready → first answer through the router, and the router's latency overhead.

1. Writes a debug checkpoint (shipped debug tokenizer recipe + debug model) and starts the time;
   the local fleet (vLLM + vllm-router, what ``tanuki local apply`` runs) serves it; the clock
   stops at the first 200 from /v1/chat/completions through the router. Goal ≤ 90 s on this CPU.
2. The same load (loadgen: non-streaming chat, fixed concurrency and request count) alternately
   straight to the vLLM replica and through the router, several rounds each in the same run;
   prints p50 latency of both and router ÷ direct. Goal ≤ 1.05. The baseline is the same replica,
   the same prompts and token budget at the same concurrency without the router in the path, so
   the ratio is the router's own cost; alternating rounds spread the machine's drift over both.

    .venv/bin/python benchmarks/serving.py [--rounds 10] [--requests 100] [--concurrency 2] [--max-tokens 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build_checkpoint(root: Path) -> Path:
    import torch

    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.recipes import shipped_recipe
    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import build_tokenizer, copy_tokenizer_files

    build_tokenizer(load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer")), root / "tokenizer")
    torch.manual_seed(0)
    build_model(ModelConfig(preset="debug"), dtype=torch.float32).save_pretrained(root / "checkpoint")
    copy_tokenizer_files(root / "tokenizer", root / "checkpoint")
    return root / "checkpoint"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[8, 32],
                        help="completion lengths to measure the overhead at (each its own comparison)")
    args = parser.parse_args()

    from tanuki_serving.config import EngineConfig, RolloutPolicy, RouterConfig
    from tanuki_serving.fleet import FleetSpec, LocalFleet, free_port, http_post
    from tanuki_serving.loadgen import LoadConfig, run_load

    with tempfile.TemporaryDirectory(prefix="tanuki-serving-bench-") as tmp:
        root = Path(tmp)
        checkpoint = build_checkpoint(root)
        ready_at = time.perf_counter()  # "checkpoint ready"
        spec = FleetSpec(name="bench", model=str(checkpoint), api_key="bench-key",
                         engine=EngineConfig(max_model_len=256, dtype="float32", extra_args=["--enforce-eager"]),
                         router=RouterConfig(port=free_port(), policy="round_robin"), rollout=RolloutPolicy())
        fleet = LocalFleet("bench", root / "logs")
        headers = {"Authorization": "Bearer bench-key"}
        body = {"model": "bench", "messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": 8}
        try:
            while True:
                status = fleet.tick(spec)
                if status["phase"] == "Failed":
                    print(f"serving failed: {status['message']}", file=sys.stderr)
                    return 1
                if status["phase"] == "Running" and http_post(f"{status['outputs']['url']}/chat/completions", body,
                                                              headers=headers)[0] == 200:
                    break
                time.sleep(0.25)
            first_answer = time.perf_counter() - ready_at
            print(f"checkpoint ready → first answer through the router: {first_answer:.1f} s (goal ≤ 90 s)")

            replica = next(r for r in fleet.replicas if r.state == "routed")
            targets = {"direct": f"{replica.url}/v1", "router": status["outputs"]["url"]}
            for max_tokens in args.max_tokens:
                p50: dict[str, list[float]] = {"direct": [], "router": []}
                for round_index in range(args.rounds):
                    order = ("direct", "router") if round_index % 2 == 0 else ("router", "direct")
                    for name in order:
                        report = asyncio.run(run_load(LoadConfig(
                            base_url=targets[name], model="bench", api_key="bench-key", concurrency=args.concurrency,
                            requests=args.requests, max_tokens=max_tokens, stream=False)))
                        if report.failed:
                            print(f"{name}: {report.failed} failed requests: {report.errors}", file=sys.stderr)
                            return 1
                        p50[name].append(report.latency_s["p50"])
                direct, routed = statistics.median(p50["direct"]), statistics.median(p50["router"])
                print(f"{max_tokens} tokens/request, {args.rounds} rounds × {args.requests} requests at concurrency "
                      f"{args.concurrency}: p50 direct {direct * 1000:.1f} ms, through vllm-router {routed * 1000:.1f} ms"
                      f" → router ÷ direct {routed / direct:.3f} (goal ≤ 1.05)")
        finally:
            fleet.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
