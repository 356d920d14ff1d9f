"""``tanuki check -f FILE [--workdir D]`` (and ``tanuki local apply --dry-run``): what the operator
would do with each resource of a chain on its first look, without running anything.

Each resource goes through the operator's own reconcile against an in-memory API holding the
file's resources (and, with ``--workdir``, what the local runner has there: finished upstreams,
Secrets as files). So the verdicts are the operator's decisions, not a second copy of them: a
resource **runs** (its children would be created now), **waits** for upstreams of the file that
have not produced yet, is **done** (it succeeded there with this spec), reads an upstream that is
not in the file (**unknown** without ``--workdir``: a cluster may have it), or has a **problem** that
is certain: an invalid spec, a missing Secret key, an upstream that exists nowhere, a refused edit,
a stage this operator does not have. Without ``--workdir`` the Secrets are not known here (they
live in the cluster): they are not checked. Exit 2 when any problem is certain.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tanuki_operator.api import API_VERSION
from tanuki_operator.api.common import Phase, Status
from tanuki_operator.embedded.store import ObjectStore, key_of
from tanuki_operator.preflight import SECRET_MISSING, mounted_secrets
from tanuki_operator.resources import NAMESPACE, load_resources, manifest_of, store_of, unknown
from tanuki_operator.validation import validate_spec

PROBLEMS = {SECRET_MISSING, "InvalidSpec", "UpstreamUnavailable", "StageNotAvailable", "ImmutableFieldChanged"}
"""Reasons that no waiting will mend: something in the file or the cluster must change."""


@dataclass
class Verdict:
    resource: str
    """``Kind/name``."""
    outcome: str
    """runs, waits, done, unknown or problem."""
    detail: str


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("-f", "--filename", required=True, help="custom resources YAML, or a shipped example name")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="a local runner workdir: its finished upstreams count and its Secrets (files) are checked")
    return parser


def _memory_store(workdir: Path | None) -> ObjectStore:
    """An API in memory, holding what the workdir's runner left (read, never written back)."""
    memory = ObjectStore(None, secrets_dir=workdir / "secrets" if workdir is not None else None)
    if workdir is not None and (workdir / ".tanuki" / "objects.json").is_file():
        for obj in store_of(workdir).all():
            memory.objects[key_of(obj)] = obj
    return memory


def _assume_secrets(store: ObjectStore, resources: list[dict[str, Any]], namespace: str) -> None:
    """Without a workdir the Secrets live in a cluster this check cannot see: each one referenced is
    taken to exist, with the keys the file asks of it."""
    wanted: dict[str, set[str]] = {}
    for resource in resources:
        model, _ = validate_spec(resource["kind"], resource.get("spec"))
        for _, ref in mounted_secrets(model) if model is not None else []:
            wanted.setdefault(ref.name, set()).add(ref.key)
    for name, keys in wanted.items():
        store.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                     "data": dict.fromkeys(sorted(keys), "")})


def check(resources: list[dict[str, Any]], workdir: Path | None) -> list[Verdict]:
    """The operator's first look at each resource (see the module docstring)."""
    from tanuki_operator.handlers.reconcile import reconcile
    from tanuki_operator.render.common import Settings

    store = _memory_store(workdir)
    if workdir is None:
        _assume_secrets(store, resources, NAMESPACE)
    verdicts: list[Verdict] = []
    known = []
    for resource in resources:
        label = f"{resource['kind']}/{resource['metadata']['name']}"
        if (why := unknown(resource)) is not None:
            verdicts.append(Verdict(label, "problem", why))
            continue
        known.append(resource)
        store.apply(manifest_of(resource, workdir if workdir is not None else Path(".")), manager="kubectl")
    settings = Settings.from_env()
    for resource in known:
        kind, name = resource["kind"], resource["metadata"]["name"]
        stored = store.get(API_VERSION, kind, NAMESPACE, name)
        assert stored is not None, "applied above"
        outcome = reconcile(store, settings, kind, stored)
        status = Status.model_validate({**(stored.get("status") or {}), **outcome.status})
        verdict = Verdict(f"{kind}/{name}", *_judge(status))
        if workdir is None and verdict.outcome == "problem" and verdict.detail.startswith("UpstreamUnavailable") \
                and all(part.endswith("does not exist") for part in (status.message or "").split("; ")):
            # not in this file: in a cluster it may exist already (a server applied after its chain)
            verdict = Verdict(verdict.resource, "unknown", f"{status.message}: not in this file (it must exist in "
                                                           "the namespace when this is applied)")
        verdicts.append(verdict)
    return verdicts


def _judge(status: Status) -> tuple[str, str]:
    conditions = {c.type: c for c in status.conditions}
    valid, ready = conditions.get("Valid"), conditions.get("Ready")
    if valid is not None and valid.status == "False":
        return "problem", f"{valid.reason}: {valid.message}"
    reason = ready.reason if ready is not None else ""
    if status.phase in (Phase.VALIDATION_FAILED, Phase.FAILED) or reason in PROBLEMS:
        return "problem", f"{reason}: {status.message}"
    if status.phase is Phase.WAITING:
        return "waits", status.message or ""
    if status.phase is Phase.SUCCEEDED:
        return "done", "succeeded there with this spec"
    return "runs", "starts now"


def table(verdicts: list[Verdict]) -> str:
    rows = [["RESOURCE", "VERDICT", "DETAIL"]] + [[v.resource, v.outcome, v.detail] for v in verdicts]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{row[0].ljust(widths[0])}   {row[1].ljust(widths[1])}   {row[2]}".rstrip() for row in rows)


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.recipes import resource_file

    verdicts = check(load_resources(resource_file(args.filename)), args.workdir)
    print(table(verdicts))
    if args.workdir is None:
        print("(Secrets not checked: they live in the cluster; --workdir checks a local runner's files)")
    return 2 if any(v.outcome == "problem" for v in verdicts) else 0
