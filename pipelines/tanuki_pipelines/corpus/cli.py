"""``tanuki corpus --out DIR``: write the built-in bilingual debug corpus."""

from __future__ import annotations

import argparse


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--out", required=True, help="directory for ja.jsonl, en.jsonl, synth.jsonl")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.corpus.generate import main as generate_main

    return generate_main(["--out", args.out, "--seed", str(args.seed)])
