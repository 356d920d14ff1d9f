"""The ``tanuki`` command: one subcommand per stage, heavy imports deferred to each ``main``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points

from tanuki_common.errors import EXIT_BAD_INPUT, BadInputError

# subcommand → (module, help). Each module has make_parser(parser) and main(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "tokenizer": ("tanuki_pipelines.tokenizer.main", "train the SentencePiece tokenizer"),
    "curate": ("tanuki_pipelines.curate.main",
               "clean and deduplicate corpora (per-document steps, exact and MinHash near duplicates), in stages"),
    "tokenize": ("tanuki_pipelines.tokenize.main",
                "tokenize corpora into a token store (Megatron indexed dataset), in parallel and resumable"),
    "pretrain": ("tanuki_pipelines.pretrain.main", "pretrain a dense Llama-shaped model with DeepSpeed"),
    "upcycle": ("tanuki_pipelines.upcycle.main", "turn a dense checkpoint into a Mixture-of-Experts one"),
    "synth": ("tanuki_pipelines.synth.main",
             "rewrite documents in many styles and write persona dialogues (vLLM via Ray Data), filtered and deduplicated"),
    "quantize": ("tanuki_pipelines.quantize.main",
                "quantize a checkpoint (W8A8, W4A16, FP8 for vLLM; GGUF for llama.cpp), gated on agreement with the source"),
    "sft": ("tanuki_pipelines.sft.main", "supervised chat fine-tuning with TRL (assistant-only loss, LoRA optional)"),
    "dpo": ("tanuki_pipelines.dpo.main", "preference pairs (answer twice, judge both orders) then TRL DPO"),
    "model-info": ("tanuki_pipelines.pretrain.info", "print parameter counts of a recipe's model"),
    "tokenizer-info": ("tanuki_pipelines.tokenizer.info",
                      "vocabulary, special ids and characters/bytes per token of any HF tokenizer on given text"),
    "corpus": ("tanuki_pipelines.corpus.cli", "write the built-in bilingual debug corpus"),
    "arena": ("tanuki_pipelines.arena.main",
              "the blind side-by-side arena where people vote on two anonymous answers, rated live"),
    "eval": ("tanuki_pipelines.eval.main",
            "grade served models with an LLM judge, run arena battles, compute ratings, run lm-evaluation-harness"),
}


PLUGIN_GROUP = "tanuki.commands"


def all_commands() -> dict[str, tuple[str, str]]:
    """Built-in commands plus those other packages register under the ``tanuki.commands`` group."""
    commands = dict(COMMANDS)
    for entry in entry_points(group=PLUGIN_GROUP):
        module = import_module(entry.value)
        commands.setdefault(entry.name, (entry.value, (module.__doc__ or "").strip().splitlines()[0]))
    return commands


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tanuki", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in all_commands().items():
        module = import_module(module_name)
        module.make_parser(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def command_main(name: str) -> Callable[[argparse.Namespace], int]:
    return import_module(all_commands()[name][0]).main


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return command_main(args.command)(args)
    except BadInputError as exc:
        print(f"tanuki {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
