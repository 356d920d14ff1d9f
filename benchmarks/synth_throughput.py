"""Generated tokens/s of ``tanuki synth``'s engine against Hugging Face ``generate`` and bare vLLM,
measured in one run on the same model, prompts and sampling.

All four sides generate the rewrites of the same documents in the same styles (the recipe's rewrite
prompts through the model's chat template; temperature 0.1, repetition penalty 1.2, at most
``--max-tokens`` new tokens), on one debug-architecture model built from a seed:

- **tanuki**: a real ``tanuki synth`` run (vLLM in a Ray Data actor, one shard holding every
  prompt); its rate is the engine's own time on the shard (``stats.json``'s
  ``engine_tokens_per_second``), so Ray's and vLLM's start-up are excluded;
- **bare vLLM**: ``vllm.LLM.chat`` on the same prompts in one call, timed after the engine is
  built (the limit for tanuki's engine; goal ≥ 0.9×);
- **HF sequential**: ``model.generate`` one prompt at a time, 1 thread (goal: tanuki ≥ 10×);
- **HF batched**: ``model.generate`` on batches of ``--hf-batch`` left-padded prompts, 1 thread
  (goal: tanuki ≥ 2×).

Each side runs in its fastest setting on this machine: both vLLM sides in bfloat16 where the CPU
has bf16 instructions (AMX or AVX512-BF16; else float32) and compiled (the recipe's
``generator.enforce_eager: false``; ``--eager`` to measure eager); each HF side in float32 and in
bfloat16, the faster counting.

Each side counts the tokens it actually generated (a random-init model seldom stops early, and
every side may stop at EOS). The HF sides and bare vLLM run in their own processes so engines do
not share threads. Run it on a quiet machine.

    .venv/bin/python benchmarks/synth_throughput.py [--prompts 64] [--max-tokens 64] [--hf-batch 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

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


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "amx_bf16" in flags or "avx512_bf16" in flags


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


def run_tanuki(recipe_path: Path, out: Path) -> float:
    subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "--config", str(recipe_path),
                    "--output-dir", str(out)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "stats.json").read_text())["engine_tokens_per_second"]


BARE_VLLM = """
import json, sys, time, os
from tanuki_serving.launch import set_cpu_vllm_defaults
set_cpu_vllm_defaults(os.environ)  # the same engine environment as tanuki's side
from vllm import LLM, SamplingParams
model, path, dtype, eager = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "eager"
requests = json.load(open(path))
llm = LLM(model=model, max_model_len=1024, dtype=dtype, enforce_eager=eager, seed=0)
params = [SamplingParams(temperature=r["temperature"], repetition_penalty=r["repetition_penalty"],
                         max_tokens=r["max_tokens"]) for r in requests]
started = time.monotonic()
outputs = llm.chat([r["messages"] for r in requests], params, use_tqdm=False)
seconds = time.monotonic() - started
print(json.dumps(sum(len(o.outputs[0].token_ids) for o in outputs) / seconds))
"""

HF = """
import json, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, path, batch, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), getattr(torch, sys.argv[4])
torch.set_num_threads(1)
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
print(json.dumps(generated / (time.monotonic() - started)))
"""


def run_script(script: str, *args: str) -> float:
    done = subprocess.run([sys.executable, "-c", script, *args], check=True, capture_output=True, text=True,
                          env={**os.environ, "VLLM_LOGGING_LEVEL": "ERROR"})
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--hf-batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=512, help="model width")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vllm-dtype", choices=["float32", "bfloat16"],
                        default="bfloat16" if cpu_has_bf16() else "float32")
    parser.add_argument("--eager", action="store_true", help="vLLM without torch.compile (tanuki's CPU default)")
    args = parser.parse_args()
    mode = "eager" if args.eager else "compiled"
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        root = Path(tmp)
        model = build(root, args.hidden, args.layers)
        recipe_path = recipe(root, model, args.prompts, args.max_tokens, args.vllm_dtype, args.eager)
        prompts = root / "requests.json"
        prompts.write_text(json.dumps(requests(recipe_path), ensure_ascii=False))
        count = len(json.loads(prompts.read_text()))
        print(f"{count} prompts, at most {args.max_tokens} new tokens each; vLLM in {args.vllm_dtype}, {mode}")
        sides = [("tanuki synth (Ray Data + vLLM)", lambda: run_tanuki(recipe_path, root / "out")),
                 ("bare vLLM", lambda: run_script(BARE_VLLM, str(model), str(prompts), args.vllm_dtype, mode))]
        for dtype in ("float32", "bfloat16"):
            sides += [(f"HF generate, batched, {dtype}",
                       lambda dtype=dtype: run_script(HF, str(model), str(prompts), str(args.hf_batch), dtype)),
                      (f"HF generate, sequential, {dtype}",
                       lambda dtype=dtype: run_script(HF, str(model), str(prompts), "1", dtype))]
        rates = {}
        for name, measure in sides:
            started = time.monotonic()
            rates[name] = measure()
            print(f"  {name:36s} {rates[name]:9.1f} generated tokens/s  ({time.monotonic() - started:.0f} s wall)",
                  flush=True)
        tanuki = rates["tanuki synth (Ray Data + vLLM)"]
        sequential = max(rate for name, rate in rates.items() if name.startswith("HF generate, sequential"))
        batched = max(rate for name, rate in rates.items() if name.startswith("HF generate, batched"))
        print(f"tanuki ÷ HF sequential (faster dtype): {tanuki / sequential:.1f}× (goal ≥ 10×)")
        print(f"tanuki ÷ HF batched (faster dtype):    {tanuki / batched:.1f}× (goal ≥ 2×)")
        print(f"tanuki ÷ bare vLLM:                    {tanuki / rates['bare vLLM']:.2f}× (goal ≥ 0.9×)")


if __name__ == "__main__":
    main()
