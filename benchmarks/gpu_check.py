"""What only a GPU can show, in one prepared run (called by ``benchmarks/gpu_check.sh``).

1. **MFU**: ``tanuki pretrain`` of the 1b preset on one GPU (bf16, torch's fused AdamW, the debug
   tokenizer and corpus, seq 2048) for a few dozen steps; median tokens/s and MFU over the steps
   after a warm-up, against the device's dense bf16 peak (``pretrain.metrics.GPU_PEAK_TFLOPS``).
2. **CUDA vLLM through our plugin**: a debug Llama is upcycled to (a) a Mixtral MoE and (b) a
   gate-norm TanukiMoe; each is loaded by the transformers class and by vLLM (offline ``LLM``,
   the ``vllm.general_plugins`` entry point registering TanukiMoe); greedy tokens for fixed
   prompts must be equal.

Each part writes ``gpu_check-<part>.json`` to ``--out`` (a part killed by its time budget leaves
none and is reported as timed out); ``--report`` merges them into ``gpu_check.json`` and prints
one table. A part reports ``skipped`` with the reason when what it needs is missing (no GPU, no
vLLM), so the script is the same everywhere.

    python benchmarks/gpu_check.py --out DIR --parts mfu [--mfu-steps 30]
    python benchmarks/gpu_check.py --out DIR --parts vllm
    python benchmarks/gpu_check.py --out DIR --report
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROMPTS = ["今日は", "東京の天気は", "The weather in Kyoto", "3 + 4 ="]
NEW_TOKENS = 16
WARMUP_STEPS = 5


def tokenizer(out: Path) -> Path:
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.recipes import shipped_recipe
    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import build_tokenizer

    target = out / "tokenizer"
    if not (target / "tokenizer.model").is_file():
        build_tokenizer(load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer")), target)
    return target


def mfu_part(out: Path, steps: int) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"status": "skipped", "reason": "no CUDA device"}
    from tanuki_pipelines.recipes import recipes_dir, shipped_recipe

    corpus = recipes_dir() / "debug" / "corpus"
    run = out / "pretrain-1b"
    sets = [f"tokenizer.path={tokenizer(out)}", f"train.steps={steps}", "train.seq_len=2048",
            "train.micro_batch_size=8", "train.grad_accum_steps=1", "train.warmup_steps=2", "train.log_every=1",
            "train.precision=bf16", f"checkpoint.every_steps={steps * 10}",
            f"data.sources.0.path={corpus / 'ja.jsonl'}", f"data.sources.1.path={corpus / 'en.jsonl'}"]
    command = [sys.executable, "-m", "tanuki_pipelines.cli", "pretrain", "--config", str(shipped_recipe("1b", "pretrain")),
               "--output-dir", str(run), "--nproc-per-node", "1", *[a for s in sets for a in ("--set", s)]]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return {"status": "failed", "reason": result.stderr[-1500:]}
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][WARMUP_STEPS:]
    return {"status": "ok", "device": torch.cuda.get_device_name(0), "steps": steps,
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in records),
            "mfu": statistics.median(r["mfu"] for r in records if r.get("mfu") is not None),
            "seconds": round(time.perf_counter() - started, 1)}


def checkpoints(out: Path) -> dict[str, Path]:
    import torch

    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.tokenizer.train import copy_tokenizer_files
    from tanuki_pipelines.upcycle.config import UpcycleConfig
    from tanuki_pipelines.upcycle.convert import upcycle

    torch.manual_seed(0)
    dense = out / "dense"
    build_model(ModelConfig(preset="debug"), dtype=torch.float32).save_pretrained(dense)
    copy_tokenizer_files(tokenizer(out), dense)
    made = {}
    for name, gate_norm in (("mixtral", False), ("tanuki-moe-gate-norm", True)):
        config = UpcycleConfig(source=dense, num_experts=4, top_k=2, noise_std=0.01,
                               gate_norm={"enabled": gate_norm, "scale": 1.0})
        made[name] = Path(upcycle(config, out / name, progress=False)["checkpoint"])
    return made


def transformers_greedy(model_dir: Path, device: str) -> list[list[int]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tanuki_serving.plugin.hf_model import register_transformers

    register_transformers()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    answers = []
    for prompt in PROMPTS:
        ids = tok(prompt, return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            output = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
        answers.append(output[0, ids.shape[1]:].tolist())
    return answers


def vllm_greedy(model_dir: Path) -> list[list[int]]:
    import torch
    from vllm import LLM, SamplingParams

    # on the CPU backend the fraction is of the NUMA node's memory (FIELD-NOTES): keep it small there
    share = 0.3 if torch.cuda.is_available() else 0.2
    llm = LLM(model=str(model_dir), dtype="float32", max_model_len=256, enforce_eager=True,
              gpu_memory_utilization=share, seed=0)
    outputs = llm.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=NEW_TOKENS))
    return [list(output.outputs[0].token_ids) for output in outputs]


def vllm_part(out: Path) -> dict[str, Any]:
    import importlib.util

    import torch

    if importlib.util.find_spec("vllm") is None:
        return {"status": "skipped", "reason": "vllm is not installed"}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {}
    for name, model_dir in checkpoints(out).items():
        started = time.perf_counter()
        # vLLM in a child process of its own (the offline engine spawns workers; one engine per process)
        answer = out / f"vllm-{name}.json"
        answer.unlink(missing_ok=True)
        probe = subprocess.run([sys.executable, __file__, "--vllm-greedy", str(model_dir), "--out", str(answer)],
                               capture_output=True, text=True)
        if not answer.is_file():  # (vLLM may exit non-zero at shutdown after answering: FIELD-NOTES)
            results[name] = {"status": "failed", "reason": probe.stderr[-1500:]}
            continue
        served = json.loads(answer.read_text())
        reference = transformers_greedy(model_dir, device)
        results[name] = {"status": "ok" if served == reference else "mismatch", "equal_prompts":
                         sum(a == b for a, b in zip(served, reference, strict=False)), "prompts": len(PROMPTS),
                         "seconds": round(time.perf_counter() - started, 1)}
    return {"status": "ok" if all(r["status"] == "ok" for r in results.values()) else "failed",
            "device": device, "models": results}


def table(report: dict[str, Any]) -> str:
    lines = ["| check | result |", "|---|---|"]
    mfu = report.get("mfu", {})
    if mfu.get("status") == "ok":
        lines.append(f"| pretrain 1b, bf16, 1 GPU ({mfu['device']}) | {mfu['tokens_per_s']:,.0f} tokens/s, "
                     f"MFU {mfu['mfu']:.1%} |")
    elif mfu:
        lines.append(f"| pretrain 1b MFU | {mfu['status']}: {mfu.get('reason', '')[:200]} |")
    served = report.get("vllm", {})
    for name, result in (served.get("models") or {}).items():
        detail = f"{result['equal_prompts']}/{result['prompts']} prompts equal" if "prompts" in result \
            else result.get("reason", "")[:200]
        lines.append(f"| vLLM ({served['device']}) vs transformers, {name}, greedy {NEW_TOKENS} tokens | "
                     f"{result['status']}: {detail} |")
    if served and not served.get("models"):
        lines.append(f"| vLLM greedy vs transformers | {served['status']}: {served.get('reason', '')[:200]} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check"))
    parser.add_argument("--mfu-steps", type=int, default=30)
    parser.add_argument("--parts", default="mfu,vllm")
    parser.add_argument("--report", action="store_true", help="merge the parts' results, print the table")
    parser.add_argument("--vllm-greedy", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.vllm_greedy is not None:  # the child process of vllm_part: answers into the --out file
        args.out.write_text(json.dumps(vllm_greedy(args.vllm_greedy)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    if not args.report:
        for part in parts:
            result = mfu_part(args.out, args.mfu_steps) if part == "mfu" else vllm_part(args.out)
            (args.out / f"gpu_check-{part}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
            print(json.dumps({part: result}, ensure_ascii=False))
        return 0
    report: dict[str, Any] = {}
    for part in parts:
        path = args.out / f"gpu_check-{part}.json"
        report[part] = json.loads(path.read_text()) if path.is_file() else \
            {"status": "failed", "reason": "did not finish within its time budget"}
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(table(report))
    return 0 if all(part.get("status") in ("ok", "skipped") for part in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
