"""``tanuki dpo --config R --output-dir D [--nproc-per-node N] [--ray-address A]``.

Three resumable steps, each skipping what an earlier run finished:

1. **generate** (``answers/`` shards): the policy answers every prompt twice;
2. **judge** (``judged.jsonl``): both orders at temperature 0; consistent verdicts become
   ``pairs.jsonl``, the rest go to ``pairs_aside.jsonl`` with the judge's text, and
   ``pairs_stats.json`` counts kept / tie / inconsistent / unparseable / identical;
3. **train**: ``torchrun -m tanuki_pipelines.dpo.train`` (TRL ``DPOTrainer``), resuming from the
   newest checkpoint.

With ``generate: false`` the prompts file already holds prompt/chosen/rejected and only training runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tanuki_pipelines.cli_common import add_recipe_arguments

if TYPE_CHECKING:
    from tanuki_pipelines.dpo.config import DPOConfig

MODULE = "tanuki_pipelines.dpo.train"


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    add_recipe_arguments(parser, default_output="runs/dpo")
    parser.add_argument("--nproc-per-node", type=int, default=None,
                        help="training processes (default: one per visible GPU, else 1)")
    parser.add_argument("--ray-address", default=None,
                        help="an existing Ray cluster for the generate step; default: an in-process Ray")
    return parser


def make_pairs(config: DPOConfig, prompts: Path, out: Path, ray_address: str | None) -> dict[str, Any]:
    """Steps 1 and 2 over the ``prompts`` file: ``pairs.jsonl`` and its statistics."""
    from tanuki_common.jsonl import jsonl
    from tanuki_pipelines.dpo.generate import judge_answers, read_prompts
    from tanuki_pipelines.dpo.pairs import pair_stats
    from tanuki_pipelines.publish import write_durable
    from tanuki_pipelines.synth.engine_job import EngineJob
    from tanuki_pipelines.synth.plan import shards
    from tanuki_pipelines.synth.shards import generate_shards

    items, problems = read_prompts(prompts)
    for reason, found in problems.as_dict().items():
        print(f"[tanuki dpo] left out {found['count']} prompt(s): {reason} (e.g. {', '.join(found['first'])})",
              flush=True)
    generator = config.pairs.generator.model_copy(update={"path": config.model})
    job = EngineJob(config.pairs.engine, generator, config.pairs.ray, config.pairs.endpoint, config.train.seed,
                    "tanuki_pipelines.dpo.generate:answer_shard", config.model_dump_json())
    answers, generation = generate_shards(shards(items, config.pairs.shard_size), out / "answers", "dpo", job,
                                          ray_address)
    judged = judge_answers(answers, config, out)
    kept = [{"id": r["id"], "prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]}
            for r in judged if r["outcome"] == "kept"]
    write_durable(out / "pairs.jsonl", jsonl(kept))
    write_durable(out / "pairs_aside.jsonl", jsonl([r for r in judged if r["outcome"] != "kept"]))
    stats = {**pair_stats(judged), "prompts": len(items), "prompt_problems": problems.as_dict(),
             "generation_this_run": generation}
    write_durable(out / "pairs_stats.json", json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    print(f"[tanuki dpo] pairs: {json.dumps(pair_stats(judged))}", flush=True)
    return stats


def main(args: argparse.Namespace) -> int:
    from tanuki_common.errors import BadInputError
    from tanuki_common.jsonl import jsonl
    from tanuki_pipelines.checkpoints import require_checkpoint
    from tanuki_pipelines.dpo.config import DPOConfig
    from tanuki_pipelines.dpo.generate import read_ready_pairs
    from tanuki_pipelines.outputs import OUTPUTS_FILE, publish_outputs, retract_outputs
    from tanuki_pipelines.preflights import load_checked_recipe
    from tanuki_pipelines.pretrain.main import run_training
    from tanuki_pipelines.publish import write_durable
    from tanuki_pipelines.sft.train import chat_tokenizer

    config = load_checked_recipe(DPOConfig, args.config, args.set)
    model = require_checkpoint("model", config.model)
    if config.prompts is None:
        raise BadInputError("prompts: not set")
    chat_tokenizer(model)  # before generating: training would fail without a chat template
    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    retract_outputs(out)
    if config.generate:
        stats = make_pairs(config, config.prompts, out, args.ray_address)
        if not stats["kept"]:
            dropped = {k: stats[k] for k in ('tie', 'inconsistent', 'unparseable', 'identical', 'no_answers')}
            raise BadInputError(f"no preference pair survived judging: {json.dumps(dropped)} "
                                f"(see {out / 'pairs_aside.jsonl'})")
    else:
        pairs, problems = read_ready_pairs(config.prompts)
        write_durable(out / "pairs.jsonl", jsonl(pairs))
        stats = {"kept": len(pairs), "prompt_problems": problems.as_dict()}
        write_durable(out / "pairs_stats.json", json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    nproc = args.nproc_per_node
    if nproc is None:
        import torch

        nproc = max(torch.cuda.device_count(), 1)
    code = run_training(config, out, nproc, MODULE)
    if code != 0:
        return code
    outputs = json.loads((out / OUTPUTS_FILE).read_text())
    outputs.update(pairs=str(out / "pairs.jsonl"), pairs_stats=str(out / "pairs_stats.json"))
    publish_outputs(outputs, out)
    print(json.dumps(outputs, ensure_ascii=False))
    return 0
