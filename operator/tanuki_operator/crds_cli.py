"""``tanuki crds [--output-dir charts/tanuki/crds] [--check]``: write or check the CRD files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--output-dir", default="charts/tanuki/crds", help="where the CRD YAML files go")
    parser.add_argument("--check", action="store_true", help="fail if the files differ from the models")
    return parser


def main(args: argparse.Namespace) -> int:
    from tanuki_operator.crds import all_crds, render_yaml

    out = Path(args.output_dir)
    stale = []
    for name, document in all_crds().items():
        text = render_yaml(document)
        path = out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    if stale:
        print("CRDs differ from the models; run `tanuki crds`: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
