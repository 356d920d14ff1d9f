"""``tanuki render -f FILE [--namespace NS] [--workdir D]``: the children the operator would create.

Prints, as YAML, every manifest the operator renders for the custom resources in FILE (a path or
a shipped example such as ``debug-chain``), like ``helm template``: to review before
``kubectl apply`` and for CI to validate. An upstream's outputs come from ``--workdir``'s
statuses (``tanuki local apply``) when it finished there, otherwise a placeholder names them.
Resources that would not render say why in a comment (``ValidationFailed`` also exits 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"
OUTPUT_KEYS = ("checkpoint", "dataset", "url", "model")


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("-f", "--filename", required=True, help="custom resources YAML, or a shipped example name")
    parser.add_argument("--namespace", default="default", help="namespace of the resources (default: default)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="take finished upstreams' outputs from this local runner workdir")
    return parser


def placeholder_outputs(kind: str, name: str) -> dict[str, str]:
    return {key: f"<outputs.{key} of {kind}/{name}>" for key in OUTPUT_KEYS}


def render_file(resources: list[dict[str, Any]], namespace: str,
                stored: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any] | str], list[str]]:
    """Manifests (and comments, as strings) for every resource; field errors of invalid ones."""
    from tanuki_operator.lineage import resolve
    from tanuki_operator.render import Owner, Settings, render
    from tanuki_operator.stages import STAGES, not_available_message
    from tanuki_operator.validation import summarize, validate_spec

    settings = Settings.from_env()
    documents: list[dict[str, Any] | str] = []
    errors: list[str] = []
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        label = f"{kind}/{name}"
        stage = STAGES.get(kind)
        if stage is None:
            errors.append(f"{label}: kind: unknown kind")
            continue
        model, problems = validate_spec(kind, resource.get("spec"))
        if model is None:  # validate_spec returns a model exactly when there are no problems
            errors.append(f"{label}: ValidationFailed: {summarize(problems)}")
            documents.append(f"{label}: ValidationFailed: {summarize(problems)}")
            continue
        if not stage.available:
            documents.append(f"{label}: Failed (StageNotAvailable): {not_available_message(stage)}")
            continue

        def lookup(upstream_kind: str, upstream_name: str) -> dict[str, Any] | None:
            status = stored.get(f"{upstream_kind}/{upstream_name}")
            if status is not None and status.get("phase") == STAGES[upstream_kind].ready_phase:
                return status
            # not finished there (or defined elsewhere): a placeholder names the output it will give
            return {"phase": STAGES[upstream_kind].ready_phase, "outputs": placeholder_outputs(upstream_kind, upstream_name)}

        resolution = resolve(model, getattr(model, "storage", None), lookup)
        if resolution.errors:
            documents.append(f"{label}: Waiting: {'; '.join(resolution.errors)}")
            continue
        owner = Owner(kind=kind, name=name, namespace=namespace, uid=PLACEHOLDER_UID)
        documents.append(f"{label}")
        documents += render(stage, owner, model, resolution.inputs, settings)
    return documents, errors


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (a recipe inside a ConfigMap) as readable ``|`` blocks."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def to_yaml(documents: list[dict[str, Any] | str]) -> str:
    parts = []
    for document in documents:
        if isinstance(document, str):
            parts.append("".join(f"# {line}\n" for line in document.splitlines()))
        else:
            parts.append("---\n" + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120))
    return "".join(parts)


def main(args: argparse.Namespace) -> int:
    from tanuki_operator.local import statuses
    from tanuki_operator.resources import load_resources
    from tanuki_pipelines.recipes import resource_file

    resources = load_resources(resource_file(args.filename))
    stored = statuses(args.workdir) if args.workdir is not None else {}
    documents, errors = render_file(resources, args.namespace, stored)
    sys.stdout.write(f"# tanuki render: children of {len(resources)} resource(s) in namespace {args.namespace}; "
                     f"ownerReferences carry a placeholder uid\n" + to_yaml(documents))
    for error in errors:
        print(f"tanuki render: {error}", file=sys.stderr)
    return 2 if errors else 0
