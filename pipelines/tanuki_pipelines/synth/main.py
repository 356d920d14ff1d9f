"""``tanuki synth --config R --output-dir D [--ray-address A]`` and
``tanuki synth filter --input F... --output-dir D [--config R]``.

``synth`` rewrites each document in sampled styles and writes persona dialogues (vLLM in Ray Data
actors, or an OpenAI-compatible endpoint), shard by shard: a shard is written whole under
``shards/`` and a rerun skips the ones present, so an interrupted run resumes without duplicates.
Then every record goes through the filters. Outputs: ``generated.jsonl`` (every raw record with its
style or persona, source id and sampling), ``kept.jsonl``/``dropped.jsonl`` (with reasons),
``dataset.jsonl`` (kept rewrites and dialogues rendered with the chat template, as ``{"text"}``:
pretraining's late phase reads it through ``sourcesFrom``), ``dialogues.jsonl`` (kept
``{"messages"}``, for SFT), ``stats.json`` and ``outputs.json``.

``filter`` applies the same filters to any JSONL of ``{"text"}`` or ``{"messages"}`` records. The
filters are ``tanuki curate``'s steps (``tanuki_pipelines.synth.filters``), run in a worker process
per core; their state is under ``filter/``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from tanuki_common.jsonl import jsonl

ACTIONS = ("filter",)


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("action", nargs="?", choices=ACTIONS, help="`filter`: only filter --input files")
    parser.add_argument("--config", type=Path, default=None, help="recipe YAML (optional for `filter`)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/synth"))
    parser.add_argument("--input", type=Path, action="append", default=[], help="`filter`: a JSONL file (repeatable)")
    parser.add_argument("--ray-address", default=None,
                        help="an existing Ray cluster (`auto` inside a RayJob); default: an in-process Ray")
    return parser


def write_filtered(records: list[dict[str, Any]], filters: Any, out: Path) -> tuple[list[dict], dict[str, Any]]:
    """Filter ``records`` into ``kept.jsonl`` and ``dropped.jsonl`` (curation state under
    ``filter/``); the kept records and the counts."""
    from tanuki_pipelines.publish import write_durable
    from tanuki_pipelines.synth.filters import filter_records

    kept, dropped = [], []
    reasons: Counter = Counter()
    by_style: dict[str, Counter] = {}
    for record, problem in filter_records(records, filters, out / "filter", len(os.sched_getaffinity(0))):
        group = by_style.setdefault(str(record.get("style") or record.get("kind") or "text"), Counter())
        if problem is None:
            kept.append(record)
            group["kept"] += 1
        else:
            reasons[problem[0]] += 1
            group["dropped"] += 1
            dropped.append({**record, "drop_reason": problem[0], "drop_detail": problem[1]})
    write_durable(out / "kept.jsonl", jsonl(kept))
    write_durable(out / "dropped.jsonl", jsonl(dropped))
    counts = {"input": len(kept) + len(dropped), "kept": len(kept), "dropped": dict(reasons),
              "by_style": {style: dict(counter) for style, counter in sorted(by_style.items())}}
    return kept, counts


def filter_files(paths: list[Path], config: Any, out: Path) -> dict[str, Any]:
    from tanuki_common.errors import BadInputError
    from tanuki_pipelines.publish import write_durable
    from tanuki_pipelines.synth.plan import Problems, read_jsonl_records

    problems = Problems()
    records = [record for path in paths for _, record in read_jsonl_records(path, problems)]
    if not records:
        raise BadInputError(f"--input: {', '.join(map(str, paths))} hold no JSON records ({dict(problems.counts)})")
    _, counts = write_filtered(records, config.filters, out)
    stats = {**counts, "input_problems": problems.as_dict()}
    write_durable(out / "stats.json", json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    return stats


def render_chat(tokenizer_dir: Path | None) -> Any:
    """messages → training text: the generator's chat template, else tanuki's ChatML layout."""
    if tokenizer_dir is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        if tokenizer.chat_template:
            return lambda messages: tokenizer.apply_chat_template(messages, tokenize=False)
    return lambda messages: "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def generate(config: Any, out: Path, ray_address: str | None) -> dict[str, Any]:
    """Plan, generate the missing shards, and return the raw records with the generation stats."""
    from tanuki_common.errors import BadInputError
    from tanuki_pipelines.synth.engine_job import EngineJob
    from tanuki_pipelines.synth.plan import Problems, personas, read_documents, shards, work_items
    from tanuki_pipelines.synth.shards import generate_shards

    problems = Problems()
    documents = read_documents(config.documents, problems)
    items = work_items(config, documents, personas(config, problems) if config.dialogues.count else [])
    if not items:
        raise BadInputError("nothing to generate: no documents (or rewrites_per_document 0) and dialogues.count 0")
    used = len(documents[:config.max_documents])
    print(f"[tanuki synth] {used} of {len(documents)} documents", flush=True)
    job = EngineJob(config.engine, config.generator, config.ray, config.endpoint, config.seed,
                    "tanuki_pipelines.synth.generation:run_shard_json", config.model_dump_json())
    planned = shards(items, config.shard_size)
    records, stats = generate_shards(planned, out / "shards", "synth", job, ray_address)
    errors = Counter(record["error"].split(":")[0] for record in records if record.get("error"))
    return {"records": records, "documents": used, "input_problems": problems.as_dict(), "items": len(items),
            "shards": len(planned), "errors": dict(errors), **stats}


def main(args: argparse.Namespace) -> int:
    from tanuki_common.errors import BadInputError
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.outputs import publish_outputs, retract_outputs
    from tanuki_pipelines.preflights import run_preflight
    from tanuki_pipelines.publish import write_durable
    from tanuki_pipelines.synth.config import SynthConfig

    config = load_recipe(SynthConfig, args.config, args.set) if args.config else SynthConfig()
    out = args.output_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    retract_outputs(out)
    if args.action == "filter":
        if not args.input:
            raise BadInputError("--input: give at least one JSONL file to filter")
        stats = filter_files(args.input, config, out)
        outputs = {"kept": str(out / "kept.jsonl"), "dropped": str(out / "dropped.jsonl"),
                   "stats": str(out / "stats.json"), "records": stats["kept"]}
        publish_outputs(outputs, out)
        print(json.dumps({"kept": stats["kept"], "dropped": stats["dropped"]}, ensure_ascii=False))
        return 0
    run_preflight(config)  # before any engine starts: vLLM reads a missing path as a hub repo id
    generation = generate(config, out, args.ray_address)
    records = generation.pop("records")
    write_durable(out / "generated.jsonl", jsonl(records))
    kept, counts = write_filtered(records, config.filters, out)
    render = render_chat(config.generator.path if config.engine == "vllm" else None)
    dataset = [{"id": r["id"], "text": r["text"] if r["kind"] == "rewrite" else render(r["messages"])} for r in kept]
    dialogues = [{key: r[key] for key in ("id", "messages", "persona", "personality", "task")}
                 for r in kept if r["kind"] == "dialogue"]
    write_durable(out / "dataset.jsonl", jsonl(dataset))
    write_durable(out / "dialogues.jsonl", jsonl(dialogues))
    stats = {**generation, "filter": counts,
             "kept": {"rewrites": len(dataset) - len(dialogues), "dialogues": len(dialogues)}}
    write_durable(out / "stats.json", json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    outputs = {"dataset": str(out / "dataset.jsonl"), "dialogues": str(out / "dialogues.jsonl"),
               "generated": str(out / "generated.jsonl"), "stats": str(out / "stats.json"),
               "records": len(dataset)}
    publish_outputs(outputs, out)
    print(json.dumps({"kept": stats["kept"], "dropped": counts["dropped"], "seconds": generation["seconds"]},
                     ensure_ascii=False))
    return 0
