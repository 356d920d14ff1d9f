"""Serving: checkpoint-ready → first answer through the router, and the router's latency overhead.

1. Writes a debug checkpoint (shipped debug tokenizer recipe + debug model) and starts the time;
   a ModelServer serving it is applied to the embedded cluster (the operator's reconcile, the local
   kubelet running its vLLM and vllm-router pods: what ``tanuki local apply`` runs); the clock
   stops at the first 200 from /v1/chat/completions at the status URL. Goal ≤ 90 s on this CPU.
2. The same load (loadgen: non-streaming chat, fixed concurrency and request count) alternately
   straight to the vLLM replica and through the router, several rounds each in the same run;
   prints p50 latency of both and router ÷ direct. Goal ≤ 1.05. The baseline is the same replica,
   the same prompts and token budget at the same concurrency without the router in the path, so
   the ratio is the router's own cost; alternating rounds spread the machine's drift over both.

    .venv/bin/python benchmarks/serving.py [--rounds 10] [--requests 100] [--concurrency 2] [--max-tokens 8 32] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from benchkit import Report, add_common_arguments, interleave, machine_facts


def build_checkpoint(root: Path, checkpoint: Path) -> Path:
    import torch

    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.recipes import shipped_recipe
    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import build_tokenizer, copy_tokenizer_files

    build_tokenizer(load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer")), root / "tokenizer")
    torch.manual_seed(0)
    build_model(ModelConfig(preset="debug"), dtype=torch.float32).save_pretrained(checkpoint)
    copy_tokenizer_files(root / "tokenizer", checkpoint)
    return checkpoint


def model_server(name: str, router_port: int) -> dict[str, object]:
    return {"apiVersion": "llm.tanuki.dev/v1alpha1", "kind": "ModelServer", "metadata": {"name": name}, "spec": {
        "storage": {"claimName": "tanuki-data"}, "model": {"path": "checkpoint"},
        "engine": {"max_model_len": 256, "dtype": "float32", "extra_args": ["--enforce-eager"]},
        "resources": {"gpus": 0}, "autoscaling": {"engine": "none"}, "replicas": 1,
        "router": {"port": router_port, "policy": "round_robin"},
        "auth": {"apiKey": {"name": "bench-key", "key": "api-key"}}}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, rounds=10)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, nargs="+", default=[8, 32],
                        help="completion lengths to measure the overhead at (each its own comparison)")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.requests, args.max_tokens = 2, 6, [8]

    from tanuki_operator.local import LocalCluster, apply_resources
    from tanuki_operator.stages import STAGES
    from tanuki_serving.loadgen import LoadConfig, run_load
    from tanuki_serving.net import free_port, http_post

    facts = machine_facts({"vLLM replica": "its own (one engine process)", "router": "vllm-router's own",
                           "load generator": 1})
    report = Report("serving", ["checkpoint ready → first answer"]
                    + [f"router ÷ direct p50, {n} tokens" for n in args.max_tokens], facts)
    with tempfile.TemporaryDirectory(prefix="tanuki-serving-bench-") as tmp:
        root = Path(tmp)
        workdir = root / "work"
        build_checkpoint(root, workdir / "tanuki-data" / "checkpoint")
        (workdir / "secrets" / "bench-key").mkdir(parents=True)
        (workdir / "secrets" / "bench-key" / "api-key").write_text("bench-key")
        ready_at = time.perf_counter()  # "checkpoint ready"
        cluster = LocalCluster(workdir, None, kinds=set(STAGES))
        router_port = free_port()
        apply_resources(cluster.store, [model_server("bench", router_port)], workdir)
        headers = {"Authorization": "Bearer bench-key"}
        body = {"model": "bench", "messages": [{"role": "user", "content": "こんにちは"}], "max_tokens": 8}
        try:
            cluster.start()
            while True:
                status = (cluster.store.get("llm.tanuki.dev/v1alpha1", "ModelServer", "local", "bench") or {}).get(
                    "status") or {}
                url = (status.get("outputs") or {}).get("url")
                if status.get("phase") == "Running" and url and \
                        http_post(f"{url}/chat/completions", body, headers=headers)[0] == 200:
                    break
                if time.perf_counter() - ready_at > 600:
                    print(f"serving did not start: {status.get('message')}", file=sys.stderr)
                    return 1
                time.sleep(0.25)
            report.value("checkpoint ready → first answer", time.perf_counter() - ready_at, "s", "≤ 90 s")

            def local_port(component: str, port: int) -> int:
                """Where the kubelet runs this pod's port (the ratio is the router's own cost: the
                Service's forwarding in front of it is left out)."""
                pod = cluster.store.list("v1", "Pod", "local", {"app.kubernetes.io/component": component})[0]
                return cluster.store.pod_ports["local", pod["metadata"]["name"], port]

            targets = {"direct": f"http://127.0.0.1:{local_port('server', 8000)}/v1",
                       "router": f"http://127.0.0.1:{local_port('router', router_port)}/v1"}
            for max_tokens in args.max_tokens:
                def p50(name: str, max_tokens: int = max_tokens) -> float:
                    load = asyncio.run(run_load(LoadConfig(
                        base_url=targets[name], model="bench", api_key="bench-key", concurrency=args.concurrency,
                        requests=args.requests, max_tokens=max_tokens, stream=False)))
                    if load.failed:
                        raise RuntimeError(f"{name}: {load.failed} failed requests: {load.errors}")
                    return load.latency_s["p50"]

                print(f"{max_tokens} tokens/request, {args.requests} requests per round at concurrency "
                      f"{args.concurrency}:", flush=True)
                values = interleave({name: (lambda name=name: p50(name)) for name in targets}, args.rounds)
                report.side(f"p50 latency direct, {max_tokens} tokens", values["direct"], "s")
                report.side(f"p50 latency through vllm-router, {max_tokens} tokens", values["router"], "s")
                report.ratio(f"router ÷ direct p50, {max_tokens} tokens", values["router"], values["direct"],
                             "≤ 1.05", higher_is_better=False)
        finally:
            cluster.stop()
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
