"""``tanuki corpus --out DIR``: copy the shipped bilingual debug corpus (``ja``, ``en``, ``synth`` and
the DPO ``prompts``, JSONL) from the debug recipe's ``corpus/`` into DIR, byte for byte."""

from __future__ import annotations

import argparse
from pathlib import Path

from tanuki_common.errors import BadInputError
from tanuki_pipelines.recipes import RECIPES_ENV, recipes_dir

FILES = ("ja.jsonl", "en.jsonl", "synth.jsonl", "prompts.jsonl")


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--out", required=True, type=Path,
                        help=f"directory for {', '.join(FILES)} (created if missing)")
    return parser


def main(args: argparse.Namespace) -> int:
    source = recipes_dir() / "debug" / "corpus"
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise BadInputError(f"no shipped debug corpus {', '.join(missing)} in {source} (set ${RECIPES_ENV})")
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise BadInputError(f"--out: not a directory: {out}") from exc
    for name in FILES:
        data = (source / name).read_bytes()
        (out / name).write_bytes(data)
        lines = len(data.splitlines())
        print(f"{out / name}\t{len(data) / 1024:.1f} KiB\t{lines} docs")
    return 0
