"""``tanuki demo``: the embedded default — the chain, as far as it is built, at toy scale.

Runs examples/debug-chain.yaml through the local runner (``tanuki local apply``) with the
project's own bilingual corpus: tokenizer + dense pretraining (DeepSpeed, CPU), then upcycling to
a Mixture of Experts; the later stages are reported as not runnable locally yet. Prints where the
checkpoints are and a greedy sample from each.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--output-dir", default="tanuki-demo", help="where the demo writes (default tanuki-demo)")
    parser.add_argument("--nproc-per-node", type=int, default=2, help="training processes (default 2)")
    parser.add_argument("--chain", default=None, help="custom resources to run (default examples/debug-chain.yaml)")
    return parser


def main(args: argparse.Namespace) -> int:
    import subprocess

    from tanuki_pipelines.recipes import examples_dir

    workdir = Path(args.output_dir).resolve()
    chain = Path(args.chain) if args.chain else examples_dir() / "debug-chain.yaml"
    corpus = workdir / "tanuki-data" / "corpus"  # the chain's PVC `tanuki-data`, as a directory
    cli = [sys.executable, "-m", "tanuki_pipelines.cli"]
    subprocess.run([*cli, "corpus", "--out", str(corpus)], check=True, stdout=subprocess.DEVNULL)
    command = [*cli, "local", "apply", "-f", str(chain), "--workdir", str(workdir),
               "--nproc-per-node", str(args.nproc_per_node)]
    print(f"[tanuki demo] {' '.join(command[2:])}", flush=True)
    code = subprocess.run(command).returncode
    if code != 0:
        return code
    data = workdir / "tanuki-data"
    pretrain = json.loads((data / "pretrainjob" / "debug-base" / "outputs.json").read_text())
    upcycled = json.loads((data / "upcyclejob" / "debug-moe" / "outputs.json").read_text())
    metrics = [json.loads(line) for line in Path(pretrain["metrics"]).read_text().splitlines()]
    print()
    print(f"dense checkpoint:  {pretrain['checkpoint']}  (HF Llama)")
    print(f"  loss {metrics[0]['loss']:.3f} → {metrics[-1]['loss']:.3f} over {pretrain['step']} steps;"
          f" curve {pretrain['loss_curve']}")
    print(f"  sample: {sample(pretrain['checkpoint'], '今日は')!r}")
    print(f"MoE checkpoint:    {upcycled['checkpoint']}  ({upcycled['architecture']}, "
          f"{upcycled['num_experts']} experts, top-{upcycled['top_k']})")
    print(f"  sample: {sample(upcycled['checkpoint'], '今日は')!r}")
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
