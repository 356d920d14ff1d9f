"""Generated tokens/s of ``tanuki synth``'s engine against Hugging Face ``generate`` and bare vLLM,
measured in one run on the same model, prompts and sampling.

All four sides generate the rewrites of the same documents in the same styles (the recipe's rewrite
prompts through the model's chat template; temperature 0.1, repetition penalty 1.2, at most
``--max-tokens`` new tokens), on one debug-architecture model built from a seed:

- **tanuki**: a real ``tanuki synth`` run with ``ray.mode: process`` (its one engine in the job's
  own process, one shard holding every prompt); its rate is the engine's own time on the shard
  (``stats.json``'s ``engine_tokens_per_second``), so vLLM's start-up is excluded;
- **tanuki on Ray**: the same with ``ray.mode: local`` (the engine in a Ray Data actor of an
  in-process Ray), to show what Ray costs on this machine;
- **bare vLLM**: ``vllm.LLM.chat`` on the same prompts in one call, timed after the engine is
  built (the limit for tanuki's engine; goal ≥ 0.9×);
- **HF sequential**: ``model.generate`` one prompt at a time, 1 thread (goal: tanuki ≥ 10×);
- **HF batched**: ``model.generate`` on batches of ``--hf-batch`` left-padded prompts, 1 thread
  (goal: tanuki ≥ 2×).

Each side runs in its fastest setting on this machine: both vLLM sides in bfloat16 where the CPU
has bf16 instructions (AMX or AVX512-BF16; else float32) and compiled (the recipe's
``generator.enforce_eager: false``; ``--eager`` to measure eager); each HF side in float32 and in
bfloat16, the faster counting.

Threads: both vLLM sides get the whole machine (tanuki's engine sets its torch threads from the
cores its node's engines share, whatever CPUs Ray reserved for the actor; bare vLLM runs with
torch's default, every core); each HF side runs with ``--hf-threads`` (default 1: on a busy
2-core machine two threads were 3–20× slower). Each side prints the threads it ran with.

Each side counts the tokens it actually generated (a random-init model seldom stops early, and
every side may stop at EOS). The HF sides and bare vLLM run in their own processes so engines do
not share threads; the sides alternate which goes first over ``--rounds``. Run it on a quiet machine.

    .venv/bin/python benchmarks/synth_throughput.py [--prompts 64] [--max-tokens 64] [--hf-batch 16] [--rounds 2] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchkit import Report, add_common_arguments, has_bf16, interleave, machine_facts

STYLES = ["qa", "news", "summary", "letter"]


def build(root: Path, hidden: int, layers: int) -> Path:
    """A seeded debug-architecture checkpoint (with the shipped debug tokenizer) and its documents."""
    import torch

    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.recipes import shipped_recipe
    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import build_tokenizer, copy_tokenizer_files

    build_tokenizer(load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer")), root / "tokenizer")
    torch.manual_seed(0)
    config = ModelConfig(preset="debug", hidden_size=hidden, intermediate_size=3 * hidden, num_hidden_layers=layers,
                         max_position_embeddings=1024)
    model = build_model(config, dtype=torch.float32)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters ({hidden} wide, {layers} layers)")
    model.save_pretrained(root / "model")
    copy_tokenizer_files(root / "tokenizer", root / "model")
    return root / "model"


def recipe(root: Path, model: Path, prompts: int, max_tokens: int, dtype: str, eager: bool) -> Path:
    from tanuki_pipelines.recipes import shipped_recipe

    corpus = shipped_recipe("debug", "pretrain").parent / "corpus" / "ja.jsonl"
    path = root / "synth.yaml"
    path.write_text(yaml.safe_dump({
        "documents": [{"name": "ja", "path": str(corpus)}], "max_documents": prompts // len(STYLES),
        "styles": STYLES, "rewrites_per_document": len(STYLES), "shard_size": prompts,
        "generator": {"path": str(model), "max_model_len": 1024, "dtype": dtype, "enforce_eager": eager},
        "rewrite": {"span_min_chars": 200, "span_max_chars": 300, "max_tokens": max_tokens},
        "filters": {"languages": []}}))
    return path


def requests(recipe_path: Path) -> list[dict]:
    """The exact prompts and sampling tanuki's engine sends (its own planning code)."""
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.synth.config import SynthConfig
    from tanuki_pipelines.synth.generation import _rewrite_request
    from tanuki_pipelines.synth.plan import Problems, read_documents, work_items

    config = load_recipe(SynthConfig, recipe_path)
    items = work_items(config, read_documents(config.documents, Problems()), [])
    return [{"messages": r.messages, "temperature": r.temperature, "repetition_penalty": r.repetition_penalty,
             "max_tokens": r.max_tokens} for r in (_rewrite_request(config, item) for item in items)]


def run_tanuki(recipe_path: Path, out: Path, ray_mode: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "--config", str(recipe_path),
                           "--output-dir", str(out), "--set", f"ray.mode={ray_mode}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"tanuki synth failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    stats = json.loads((out / "stats.json").read_text())
    return {"rate": stats["engine_tokens_per_second"], "threads": stats["engine_threads"]}


BARE_VLLM = """
import json, sys, time, os
from tanuki_common.cpu_vllm import set_cpu_vllm_defaults
set_cpu_vllm_defaults(os.environ)  # the same engine environment as tanuki's side
import torch
from vllm import LLM, SamplingParams
model, path, dtype, eager = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "eager"
requests = json.load(open(path))
threads = torch.get_num_threads()  # torch's default: every core (vLLM's CPU worker forbids changing it later)
llm = LLM(model=model, max_model_len=1024, dtype=dtype, enforce_eager=eager, seed=0)
params = [SamplingParams(temperature=r["temperature"], repetition_penalty=r["repetition_penalty"],
                         max_tokens=r["max_tokens"]) for r in requests]
started = time.monotonic()
outputs = llm.chat([r["messages"] for r in requests], params, use_tqdm=False)
seconds = time.monotonic() - started
print(json.dumps({"rate": sum(len(o.outputs[0].token_ids) for o in outputs) / seconds, "threads": threads}))
"""

HF = """
import json, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, path, batch, dtype, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), getattr(torch, sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
requests = json.load(open(path))
tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
texts = [tokenizer.apply_chat_template(r["messages"], add_generation_prompt=True, tokenize=False) for r in requests]
r0 = requests[0]
generated, started = 0, time.monotonic()
for start in range(0, len(texts), batch):
    inputs = tokenizer(texts[start:start + batch], return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=True, temperature=r0["temperature"],
                             repetition_penalty=r0["repetition_penalty"], max_new_tokens=r0["max_tokens"],
                             pad_token_id=tokenizer.pad_token_id)
    new = out[:, inputs["input_ids"].shape[1]:]
    generated += int((new != tokenizer.pad_token_id).sum())
print(json.dumps({"rate": generated / (time.monotonic() - started), "threads": torch.get_num_threads()}))
"""


def run_script(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"})
    if done.returncode != 0:
        raise RuntimeError(f"a side failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


TANUKI, ON_RAY, BARE = "tanuki synth (ray.mode process)", "tanuki synth on Ray (ray.mode local)", "bare vLLM"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, rounds=2)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--hf-batch", type=int, default=16)
    parser.add_argument("--hf-threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=512, help="model width")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vllm-dtype", choices=["float32", "bfloat16"],
                        default="bfloat16" if has_bf16() else "float32")
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile (tanuki's CPU default)")
    args = parser.parse_args()
    if args.smoke:
        args.prompts, args.max_tokens, args.hf_batch, args.hidden, args.layers = 8, 8, 4, 128, 2
        args.rounds, args.eager = 1, True
    mode = "eager" if args.eager else "compiled"
    from tanuki_pipelines.synth.ray_engine import cpu_engine_threads

    cores = len(os.sched_getaffinity(0))
    facts = machine_facts({TANUKI: cpu_engine_threads(cores, 1), ON_RAY: cpu_engine_threads(cores, 1),
                           BARE: f"torch default ({cores})", "HF generate": args.hf_threads})
    dtypes = ("float32",) if args.smoke else ("float32", "bfloat16")  # smoke: the same code path once
    hf_sides = [f"HF generate, {kind}, {dtype}" for kind in ("batched", "sequential") for dtype in dtypes]
    report = Report("synth_throughput", [TANUKI, ON_RAY, BARE, *hf_sides, "tanuki ÷ bare vLLM",
                                         "on Ray ÷ in process",
                                         "tanuki ÷ HF sequential (faster dtype)",
                                         "tanuki ÷ HF batched (faster dtype)"], facts)
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        root = Path(tmp)
        model = build(root, args.hidden, args.layers)
        recipe_path = recipe(root, model, args.prompts, args.max_tokens, args.vllm_dtype, args.eager)
        prompts = root / "requests.json"
        prompts.write_text(json.dumps(requests(recipe_path), ensure_ascii=False))
        count = len(json.loads(prompts.read_text()))
        print(f"{count} prompts, at most {args.max_tokens} new tokens each; vLLM in {args.vllm_dtype}, {mode}; "
              f"{args.rounds} rounds", flush=True)
        sides = {TANUKI: lambda: run_tanuki(recipe_path, root / "out", "process"),
                 ON_RAY: lambda: run_tanuki(recipe_path, root / "out", "local"),
                 BARE: lambda: run_script(BARE_VLLM, str(model), str(prompts), args.vllm_dtype, mode)}
        for side in hf_sides:
            kind, dtype = side.split(", ")[1:]
            batch = str(args.hf_batch) if kind == "batched" else "1"
            sides[side] = lambda batch=batch, dtype=dtype: run_script(HF, str(model), str(prompts), batch, dtype,
                                                                      str(args.hf_threads))
        threads: dict[str, set] = {name: set() for name in sides}

        def rate_of(name: str) -> float:
            result = sides[name]()
            threads[name].add(result["threads"])
            return result["rate"]

        rates = interleave({name: (lambda name=name: rate_of(name)) for name in sides}, args.rounds,
                           on_value=lambda name, r, value: print(f"    round {r + 1}: {name}: {value:.1f} tokens/s",
                                                                 flush=True))
    for name, values in rates.items():
        report.side(name, values, f"generated tokens/s ({'/'.join(map(str, sorted(threads[name])))} threads)")
    best = {kind: max((rates[s] for s in hf_sides if kind in s), key=statistics.median)
            for kind in ("batched", "sequential")}
    report.ratio("tanuki ÷ bare vLLM", rates[TANUKI], rates[BARE], "≥ 0.9×")
    report.ratio("on Ray ÷ in process", rates[ON_RAY], rates[TANUKI], "what Ray costs")
    report.ratio("tanuki ÷ HF sequential (faster dtype)", rates[TANUKI], best["sequential"], "≥ 10×")
    report.ratio("tanuki ÷ HF batched (faster dtype)", rates[TANUKI], best["batched"], "≥ 2×")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
