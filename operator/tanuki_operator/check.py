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
live in the cluster): they are not checked.

A resource that would run is also put through its program's preflight (``tanuki_pipelines.preflight``)
on the recipe its pod would read and the hardware of its ``spec.resources``: inputs that are not what
their field says, shapes the engine cannot run. Its paths are this machine's with ``--workdir``;
without, a path not found here may be on a cluster volume and is reported as not checked. Exit 2
when any problem is certain.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tanuki_common.errors import BadInputError
from tanuki_operator.api import API_VERSION
from tanuki_operator.api.arena import ArenaSpec
from tanuki_operator.api.common import JobSpec, Phase, Status
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.embedded.store import ObjectStore, key_of
from tanuki_operator.preflight import SECRET_MISSING, mounted_secrets
from tanuki_operator.resources import NAMESPACE, load_resources, manifest_of, store_of, unknown
from tanuki_operator.validation import validate_spec
from tanuki_pipelines.preflight import Hardware, Preflight

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
        store.apply(manifest_of(resource, workdir), manager="kubectl")
    settings = Settings.from_env()
    for resource in known:
        kind, name = resource["kind"], resource["metadata"]["name"]
        stored = store.get(API_VERSION, kind, NAMESPACE, name)
        assert stored is not None, "applied above"
        outcome = reconcile(store, settings, kind, stored)
        status = Status.model_validate({**(stored.get("status") or {}), **outcome.status})
        verdict = Verdict(f"{kind}/{name}", *_judge(status))
        if verdict.outcome == "runs":
            verdict = _with_preflight(verdict, store, kind, stored, paths_here=workdir is not None)
        if workdir is None and verdict.outcome == "problem" and verdict.detail.startswith("UpstreamUnavailable") \
                and all(part.endswith("does not exist") for part in (status.message or "").split("; ")):
            # not in this file: in a cluster it may exist already (a server applied after its chain)
            verdict = Verdict(verdict.resource, "unknown", f"{status.message}: not in this file (it must exist in "
                                                           "the namespace when this is applied)")
        if kind == "ModelServer" and verdict.outcome != "problem":
            verdict = _quality_servers(verdict, stored, name, {r["metadata"]["name"] for r in known
                                                               if r["kind"] == "ModelServer"})
        verdicts.append(verdict)
    return verdicts


def _quality_servers(verdict: Verdict, stored: dict[str, Any], name: str, servers: set[str]) -> Verdict:
    """A ModelServer's quality gates name servers (the judge, ``against``) its evaluations will wait
    for: itself is a problem (its rollout would wait for itself), one not in this file may exist in
    the namespace."""
    model, _ = validate_spec("ModelServer", stored.get("spec"))
    assert isinstance(model, ModelServerSpec), "the reconcile found it valid"
    quality = model.rollout.analysis.quality
    if quality is None:
        return verdict
    named = quality.servers()
    itself = [field for field, server in named.items() if server == name]
    if itself:
        return Verdict(verdict.resource, "problem", f"{itself[0]}: names this ModelServer itself (its canary "
                                                    "cannot be judged by what it rolls out on)")
    elsewhere = [f"{field}: ModelServer/{server}" for field, server in named.items() if server not in servers]
    if elsewhere:
        return Verdict(verdict.resource, verdict.outcome, f"{verdict.detail}; {'; '.join(elsewhere)}: not in this "
                                                          "file (it must exist when a canary is judged)")
    return verdict


def program_findings(kind: str, spec: Any, inputs: dict[str, str], paths_here: bool) -> Preflight:
    """What the program of a resource that would start now finds before it works: the stage's
    preflight on the recipe its pod would read, on the hardware of ``spec.resources``; a
    ModelServer's checkpoint against its vLLM engine settings."""
    from tanuki_pipelines.config import validate_recipe
    from tanuki_pipelines.preflights import findings

    if isinstance(spec, ArenaSpec):  # a web app: its recipe is what its pod would refuse
        from tanuki_pipelines.arena.config import ArenaServeConfig

        try:
            validate_recipe(ArenaServeConfig, spec.stage_recipe(inputs), Path("."), f"{kind} recipe")
        except BadInputError as exc:
            return Preflight(hardware=Hardware(gpus=0), paths_here=paths_here, problems=[str(exc)])
        return Preflight(hardware=Hardware(gpus=0), paths_here=paths_here)
    hardware = Hardware(gpus=spec.resources.gpus)
    if isinstance(spec, ModelServerSpec):
        check = Preflight(hardware=hardware, paths_here=paths_here)
        model = check.checkpoint("spec.model", Path(inputs["model"]))
        check.vllm_engine("spec.model", model, "spec.engine.", spec.engine.max_model_len,
                          spec.engine.tensor_parallel_size)
        return check
    assert isinstance(spec, JobSpec), kind
    recipe_model = type(spec).model_fields["recipe"].annotation  # every batch kind's spec has its recipe
    assert isinstance(recipe_model, type) and issubclass(recipe_model, BaseModel), kind
    try:
        config = validate_recipe(recipe_model, spec.stage_recipe(inputs), Path("."), f"{kind} recipe")
    except BadInputError as exc:
        return Preflight(hardware=hardware, paths_here=paths_here, problems=[str(exc)])
    return findings(config, hardware, paths_here=paths_here)


def _with_preflight(verdict: Verdict, store: ObjectStore, kind: str, stored: dict[str, Any],
                    paths_here: bool) -> Verdict:
    from tanuki_operator.lineage import resolve

    model, _ = validate_spec(kind, stored.get("spec"))
    assert isinstance(model, (JobSpec, ModelServerSpec, ArenaSpec)), "the reconcile found it valid"

    def lookup(upstream_kind: str, name: str) -> dict[str, Any] | None:
        found = store.get(API_VERSION, upstream_kind, NAMESPACE, name)
        return None if found is None else (found.get("status") or {})

    resolution = resolve(model, model.storage, lookup)
    check = program_findings(kind, model, resolution.inputs, paths_here)
    if check.problems:
        return Verdict(verdict.resource, "problem", "PreflightFailed: " + "; ".join(check.problems))
    if check.unknown:
        return Verdict(verdict.resource, verdict.outcome, f"{verdict.detail} (not checked here: "
                                                          f"{'; '.join(check.unknown)})")
    return verdict


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


def run(resources: list[dict[str, Any]], workdir: Path | None) -> int:
    """Print the verdicts' table; the exit code (2 when any problem is certain)."""
    verdicts = check(resources, workdir)
    print(table(verdicts))
    if workdir is None:
        print("(Secrets not checked: they live in the cluster; --workdir checks a local runner's files)")
    return 2 if any(v.outcome == "problem" for v in verdicts) else 0


def main(args: argparse.Namespace) -> int:
    from tanuki_pipelines.recipes import resource_file

    return run(load_resources(resource_file(args.filename)), args.workdir)
