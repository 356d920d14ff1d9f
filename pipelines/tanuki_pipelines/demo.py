"""``tanuki demo``: the embedded default — the chain, as far as it is built, at toy scale.

Today: the debug tokenizer and a debug Llama pretrained with DeepSpeed on this machine's CPU,
from the bilingual corpus shipped with the project. Prints where the checkpoint is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--output-dir", default="tanuki-demo", help="where the demo writes (default tanuki-demo)")
    parser.add_argument("--nproc-per-node", type=int, default=2, help="training processes (default 2)")
    parser.add_argument("--recipe", default="debug", help="shipped recipe name (default debug)")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.recipes import shipped_recipe

    output_dir = Path(args.output_dir).resolve()
    pretrain_out = output_dir / "pretrain"
    command = [
        sys.executable, "-m", "tanuki_pipelines.cli", "pretrain",
        "--config", str(shipped_recipe(args.recipe, "pretrain")),
        "--output-dir", str(pretrain_out),
        "--nproc-per-node", str(args.nproc_per_node),
    ]
    print(f"[tanuki demo] pretrain: {' '.join(command[2:])}", flush=True)
    import subprocess

    code = subprocess.run(command).returncode
    if code != 0:
        return code
    outputs = json.loads((pretrain_out / "outputs.json").read_text())
    metrics = [json.loads(line) for line in Path(outputs["metrics"]).read_text().splitlines()]
    print()
    print(f"tokenizer:   {outputs['tokenizer']}")
    print(f"checkpoint:  {outputs['checkpoint']}  (HF Llama: AutoModelForCausalLM.from_pretrained)")
    print(f"loss:        {metrics[0]['loss']:.3f} → {metrics[-1]['loss']:.3f} over {outputs['step']} steps")
    print(f"loss curve:  {outputs['loss_curve']}")
    print(f"sample:      {sample(outputs['checkpoint'], '今日は')!r}")
    return 0


def sample(checkpoint: str, prompt: str, new_tokens: int = 24) -> str:
    """Greedy continuation with stock transformers: the export is a plain HF checkpoint."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    inputs = tokenizer(prompt, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False, no_repeat_ngram_size=2)
    return tokenizer.decode(output[0], skip_special_tokens=True)
