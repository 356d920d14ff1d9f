"""``tanuki local apply -f chain.yaml``: run tanuki custom resources on this machine.

The operator runs here as it runs in a cluster: its controller and reconcilers (the same stage
registry, validation, lineage, rendering and typed status, with conditions and
``observedGeneration``) against the embedded object store (``embedded.store``, the file
``WORKDIR/.tanuki/objects.json``), and the local kubelet (``embedded.kubelet``) runs the Jobs
they render as processes within ``--cpus``: each PVC (``spec.storage.claimName``) is a directory
under ``--workdir``, Secrets are files ``WORKDIR/secrets/<name>/<key>``. A later apply, ``tanuki
local get`` and the report read the same store.

ModelServers are served from the start (vLLM processes behind ``vllm-router``, see
``local_serving``), each as soon as its upstream succeeded, so a batch stage of the same file can
use one (a DPOJob's judge, an EvalJob's targets): it waits until the server is Running. The
command then keeps serving, and watching the file for changes, until interrupted or
``--serve-for`` seconds have passed.

Applying a file again behaves as ``kubectl apply`` does: a stage that succeeded with the same
spec is not run again, a changed spec of a stage that already ran is refused naming the fields
(``tanuki local delete`` deletes a resource and its outputs so it can run anew). A failed stage is
deleted and created again (its outputs stay), so it runs again and resumes from its newest
checkpoint; one the runner was stopped in resumes the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tanuki_operator.api import API_VERSION
from tanuki_operator.api.common import JobSpec, Phase, Status
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.embedded.store import ObjectStore
from tanuki_operator.lineage import referenced, settling
from tanuki_operator.local_serving import NAMESPACE, TICK_SECONDS, LocalModelServer
from tanuki_operator.render.common import Owner, output_dir
from tanuki_operator.stages import STAGES
from tanuki_operator.validation import validate_spec


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub = parser.add_subparsers(dest="local_command", required=True)
    apply = sub.add_parser("apply", help="run the resources of a YAML file in dependency order")
    apply.add_argument("-f", "--filename", type=Path, required=True)
    apply.add_argument("--workdir", type=Path, default=Path("tanuki-local"),
                       help="each PVC becomes WORKDIR/<claimName> (default tanuki-local)")
    apply.add_argument("--cpus", type=float, default=None,
                       help="cores of the local node: pods of stages whose upstreams are ready run at the same time "
                            "while their spec.resources.cpu fits (default: this machine's cores)")
    apply.add_argument("--serve-for", type=float, default=None,
                       help="seconds to keep ModelServers up once ready (default: until interrupted; 0: stop at once)")
    apply.add_argument("--ready-timeout", type=float, default=900,
                       help="seconds a ModelServer may take to serve before apply gives up (default 900)")
    delete = sub.add_parser("delete", help="forget the resources of a YAML file: their statuses and outputs")
    delete.add_argument("-f", "--filename", type=Path, required=True)
    delete.add_argument("--workdir", type=Path, default=Path("tanuki-local"))
    get = sub.add_parser("get", help="the statuses of what was applied in a workdir, as `kubectl get tanuki` shows them")
    get.add_argument("--workdir", type=Path, default=Path("tanuki-local"))
    get.add_argument("-f", "--filename", type=Path, default=None, help="only the resources of this file")
    get.add_argument("-o", "--output", choices=["wide"], default=None, help="wide: outputs and messages too")
    return parser


def _age(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


OUTPUT_KEYS = ("url", "checkpoint", "dataset", "tokens", "report", "tokenizer")
"""What ``-o wide`` shows of a status's outputs: the first of these it has."""


def _seconds(stamp: str | None) -> float | None:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else None


def wall_seconds(status: dict[str, Any], now: float) -> float | None:
    """From the stage's start to its completion (or to ``now`` while it runs)."""
    started, ended = _seconds(status.get("startTime")), _seconds(status.get("completionTime"))
    return None if started is None else (ended or now) - started


def summary(status: dict[str, Any]) -> dict[str, Any]:
    """Phase, reason and message of a status as ``kubectl get`` would show them: a refused edit
    (Valid=False) first, else the Ready condition's reason (the local servers' ``reason`` otherwise)."""
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    valid, ready = conditions.get("Valid") or {}, conditions.get("Ready") or {}
    chosen = valid if valid.get("status") == "False" else ready
    return {"phase": status.get("phase", ""), "reason": chosen.get("reason") or status.get("reason", ""),
            "message": chosen.get("message") if chosen.get("status") == "False" and chosen is valid
            else status.get("message", "")}


def status_table(statuses: dict[str, dict[str, Any]], wide: bool, now: float) -> str:
    """``kubectl get``-style rows (pure): kind/name, phase, progress, reason, wall time (start to
    completion, or to now), age of the phase; wide adds the main output and the message."""
    header = ["NAME", "PHASE", "PROGRESS", "REASON", "WALL", "AGE"] + (["OUTPUT", "MESSAGE"] if wide else [])
    rows = [header]
    for key, status in statuses.items():
        kind, _, name = key.partition("/")
        shown = summary(status)
        progress = status.get("progress") if status.get("phase") == Phase.RUNNING else None
        wall = wall_seconds(status, now)
        ready: dict[str, Any] = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        since = _seconds(ready.get("lastTransitionTime"))
        row = [f"{kind.lower()}/{name}", str(shown["phase"]),
               f"{progress['step']}/{progress['totalSteps']}" if progress else "", str(shown["reason"]),
               "" if wall is None else _age(wall), "" if since is None else _age(now - since)]
        if wide:
            outputs = status.get("outputs") or {}
            row += [str(next((outputs[k] for k in OUTPUT_KEYS if k in outputs), "")),
                    str(shown["message"]).replace("\n", " ")[:100]]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows)


def load_resources(path: Path) -> list[dict[str, Any]]:
    from tanuki_common.errors import BadInputError

    if not path.is_file():
        raise BadInputError(f"-f: no such file: {path}")
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for index, doc in enumerate(documents):
        if not isinstance(doc, dict) or "kind" not in doc or "name" not in (doc.get("metadata") or {}):
            raise BadInputError(f"{path}: document {index} is not a resource with kind and metadata.name")
    return documents


def localised(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The spec with its PVC mounted at WORKDIR/<claimName> instead of the pod's mountPath."""
    storage = dict(spec.get("storage") or {})
    claim = str(storage.get("claimName", "default"))
    storage["mountPath"] = str((workdir / claim).resolve())
    return {**spec, "storage": storage}


SETTLE_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 15.0


def store_of(workdir: Path) -> ObjectStore:
    """The workdir's objects (custom resources and their children), as the last runner left them."""
    return ObjectStore(workdir / ".tanuki" / "objects.json")


def statuses(source: Path | ObjectStore) -> dict[str, dict[str, Any]]:
    """``Kind/name`` → status of each tanuki resource in a workdir (or store), with ``upstream``: the
    resources its spec reads from, for lineage pictures."""
    store = store_of(source) if isinstance(source, Path) else source
    return {f"{obj['kind']}/{obj['metadata']['name']}": {**(obj.get("status") or {}),
                                                           "upstream": referenced(obj.get("spec"))}
            for obj in store.all() if obj["apiVersion"] == API_VERSION}


def manifest_of(resource: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The resource as the local API server stores it: in ``NAMESPACE``, its PVC under the workdir."""
    labels = (resource.get("metadata") or {}).get("labels") or {}
    return {"apiVersion": API_VERSION, "kind": resource["kind"],
            "metadata": {"name": resource["metadata"]["name"], "namespace": NAMESPACE,
                         **({"labels": labels} if labels else {})},
            "spec": localised(resource.get("spec") or {}, workdir)}


def unknown(resource: dict[str, Any]) -> str | None:
    """Why the local API server has no such resource type (as ``kubectl apply`` says it), or None."""
    if resource.get("apiVersion") != API_VERSION or resource["kind"] not in STAGES:
        return f'no matches for kind "{resource["kind"]}" in version "{resource.get("apiVersion")}"'
    return None


class LocalCluster:
    """The operator's own controller and reconcilers against the embedded store, with the local kubelet
    running the pods it renders: a cluster's control plane and one node, in this process."""

    def __init__(self, workdir: Path, cpus: float | None, kinds: set[str]) -> None:
        from tanuki_operator.embedded.kubelet import Kubelet
        from tanuki_operator.handlers.controller import Controller
        from tanuki_operator.render.common import Settings

        self.store = store_of(workdir)
        self.kubelet = Kubelet(self.store, workdir, cpus)
        self.controller = Controller(self.store, Settings.from_env(), workers=2, emit=self._event, kinds=kinds)
        self._progress: dict[str, float] = {}
        """Resource → when its progress was last printed."""
        self.store.watch(self._dispatch)

    def _dispatch(self, event: str, obj: dict[str, Any]) -> None:
        if obj["apiVersion"] != API_VERSION:
            self.controller.child_event(event, obj)
            return
        self.controller.resource_event(obj["kind"], event, obj)
        key = f"{obj['kind']}/{obj['metadata']['name']}"
        status = obj.get("status") or {}
        progress = status.get("progress") or {}
        printed = self._progress.get(key, 0.0)
        if status.get("phase") == Phase.RUNNING and progress.get("summary") and (
                time.monotonic() - printed >= PROGRESS_EVERY_SECONDS or progress.get("step") == progress.get("totalSteps")):
            self._progress[key] = time.monotonic()
            loss = f", loss {progress['loss']:.3f}" if isinstance(progress.get("loss"), (int, float)) else ""
            print(f"[tanuki local] {key}: Running {progress['summary']}{loss}", flush=True)

    @staticmethod
    def _event(body: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """What a cluster posts as an Event, printed."""
        print(f"[tanuki local] {body['kind']}/{body['metadata']['name']}: {reason}: {message}", flush=True)

    def start(self) -> None:
        for obj in self.store.all():  # the initial listing of a watch
            if obj["apiVersion"] == API_VERSION:
                self.controller.resource_event(obj["kind"], None, obj)
        self.controller.start()
        self.kubelet.start()

    def stop(self) -> None:
        """Stop the node's processes (their pods are disrupted, so a rerun resumes them), then look at
        each unfinished resource once more so its status says so."""
        self.controller.stop()
        self.kubelet.stop()
        for obj in self.store.all():
            if obj["apiVersion"] == API_VERSION and obj["kind"] in self.controller.kinds:
                self.controller.reconcile_key((obj["kind"], NAMESPACE, obj["metadata"]["name"]))

    def settled(self, keys: list[tuple[str, str]], starting: Callable[[str, str], bool]) -> bool:
        """Nothing more will happen to these resources without something from outside: no pod runs or
        waits for cores, no reconcile is due, each status is of its current spec, and none is running
        or waiting for a server this process is still starting."""
        if self.kubelet.busy() or not self.controller.idle():
            return False
        for kind, name in keys:
            obj = self.store.get(API_VERSION, kind, NAMESPACE, name)
            if obj is None:
                continue
            status = Status.model_validate(obj.get("status") or {})
            if status.observedGeneration != obj["metadata"].get("generation") or status.phase is Phase.RUNNING:
                return False
            if status.phase is Phase.WAITING and any(starting(*ref.split("/", 1)) for ref in referenced(obj.get("spec"))):
                return False
        return True


def apply_resources(store: ObjectStore, resources: list[dict[str, Any]], workdir: Path) -> None:
    """``kubectl apply`` of each resource; one that failed is deleted first (its children go with it,
    its outputs stay), so applying again retries it and it resumes from its newest checkpoint."""
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        stored = store.get(API_VERSION, kind, NAMESPACE, name)
        phase = Phase.of((stored or {}).get("status", {}).get("phase"))
        if stored is not None and phase is Phase.FAILED:
            store.delete(API_VERSION, kind, NAMESPACE, name)
        applied = store.apply(manifest_of(resource, workdir), manager="kubectl")
        if stored is not None and phase is Phase.SUCCEEDED and \
                applied["metadata"]["generation"] == stored["metadata"]["generation"]:
            print(f"[tanuki local] {kind}/{name}: unchanged, already succeeded", flush=True)


def run_chain(cluster: LocalCluster, keys: list[tuple[str, str]], servers: Sequence[LocalModelServer] = (),
              ready_timeout: float = 900) -> None:
    """Until the batch resources ``keys`` settle: each runs once its upstreams succeeded, a stage
    reading a ModelServer among ``servers`` waits (up to ``ready_timeout`` seconds) until it serves."""
    live = {server.name: server for server in servers}

    def starting(kind: str, name: str) -> bool:
        server = live.get(name) if kind == "ModelServer" else None
        return server is not None and not server.blocked and server.status.get("phase") != Phase.FAILED \
            and (server.status.get("phase") != Phase.RUNNING or settling("ModelServer", server.status) is not None)

    deadline = time.monotonic() + ready_timeout
    quiet = 0.0
    while time.monotonic() < deadline:
        if cluster.kubelet.busy():  # a stage runs: the servers' time to get ready counts from its end
            deadline = time.monotonic() + ready_timeout
        if cluster.settled(keys, starting):
            quiet += TICK_SECONDS
            if quiet >= SETTLE_SECONDS:
                return
        else:
            quiet = 0.0
        time.sleep(TICK_SECONDS)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop like Ctrl-C (a running stage is killed, its servers stopped)


def start_servers(path: Path, resources: list[dict[str, Any]], workdir: Path,
                  store: ObjectStore) -> list[LocalModelServer]:
    servers = [LocalModelServer(path, resource["metadata"]["name"], workdir, store, localised)
               for resource in resources if resource["kind"] == "ModelServer"]
    for server in servers:
        server.start()
    return servers


def wait_until_serving(servers: list[LocalModelServer], timeout: float) -> None:
    """Until each server is Running what its spec asks for, no rollout in flight (or Failed / out of
    time); prints each endpoint."""
    deadline = time.monotonic() + timeout
    for server in servers:
        while (server.status.get("phase") not in (Phase.RUNNING, Phase.FAILED)
               or (server.status.get("phase") == Phase.RUNNING and settling("ModelServer", server.status))) \
                and not server.blocked and time.monotonic() < deadline:
            time.sleep(0.5)
        status = server.status
        print(f"[tanuki local] ModelServer/{server.name}: {status.get('phase')}: {status.get('message', '')}", flush=True)
        if status.get("phase") == Phase.RUNNING:
            outputs = status["outputs"]
            print(f"[tanuki local] ModelServer/{server.name}: OpenAI API at {outputs['url']} (model {outputs['model']!r})",
                  flush=True)


def delete(resources: list[dict[str, Any]], workdir: Path) -> list[str]:
    """Delete resources (their children go with them) and their output directories."""
    import shutil

    store = store_of(workdir)
    forgotten = []
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        model, errors = validate_spec(kind, localised(resource.get("spec") or {}, workdir))
        if not errors and isinstance(model, (JobSpec, ModelServerSpec)):  # every kind's spec has its storage
            out = Path(output_dir(Owner(kind=kind, name=name, namespace=NAMESPACE, uid=""), model.storage))
            shutil.rmtree(out, ignore_errors=True)
        if store.get(API_VERSION, kind, NAMESPACE, name) is not None:
            store.delete(API_VERSION, kind, NAMESPACE, name)
            forgotten.append(f"{kind}/{name}")
    return forgotten


def incomplete(found: dict[str, dict[str, Any]]) -> list[str]:
    """Batch stages that did not succeed (failed, refused, waiting) and servers that failed."""
    return [key for key, status in found.items()
            if Phase(status["phase"] or Phase.PENDING).broken or status.get("reason") == "ImmutableFieldChanged"
            or (not key.startswith("ModelServer/") and status["phase"] != Phase.SUCCEEDED)]


def main(args: argparse.Namespace) -> int:
    if args.local_command == "get":
        stored = statuses(args.workdir)
        if args.filename is not None:
            wanted = {f"{r['kind']}/{r['metadata']['name']}" for r in load_resources(args.filename)}
            stored = {key: status for key, status in stored.items() if key in wanted}
        print(status_table(stored, args.output == "wide", time.time()))
        return 0
    resources = load_resources(args.filename)
    if args.local_command == "delete":
        for name in delete(resources, args.workdir):
            print(f"[tanuki local] {name}: deleted")
        return 0
    os.environ.setdefault("TANUKI_POLL_SECONDS", "2")  # progress from the pods' logs: read before the handlers load
    refused = {f"{r['kind']}/{r['metadata']['name']}": why for r in resources if (why := unknown(r)) is not None}
    for key, why in refused.items():
        print(f"[tanuki local] {key}: {why}", flush=True)
    resources = [r for r in resources if unknown(r) is None]
    batch = [(r["kind"], r["metadata"]["name"]) for r in resources if r["kind"] != "ModelServer"]
    cluster = LocalCluster(args.workdir, args.cpus, kinds={kind for kind in STAGES if kind != "ModelServer"})
    apply_resources(cluster.store, resources, args.workdir)
    servers: list[LocalModelServer] = []
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        cluster.start()
        servers = start_servers(args.filename, resources, args.workdir, cluster.store)
        run_chain(cluster, batch, servers, args.ready_timeout)
        if servers:
            time.sleep(2 * TICK_SECONDS)  # one reconcile each before judging them
            wait_until_serving(servers, args.ready_timeout)
            if args.serve_for != 0 and any(server.status.get("phase") == Phase.RUNNING for server in servers):
                print("[tanuki local] serving; edit the file to roll out a new revision; Ctrl-C stops", flush=True)
                threading.Event().wait(args.serve_for)
    except KeyboardInterrupt:
        interrupted = not servers or any(server.status.get("phase") != Phase.RUNNING for server in servers)
    finally:
        for server in servers:  # no vLLM process outlives the runner
            server.stop()
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)
    applied = {f"{r['kind']}/{r['metadata']['name']}" for r in resources}
    found = {key: summary(status) for key, status in statuses(cluster.store).items() if key in applied}
    found.update({key: {"phase": Phase.VALIDATION_FAILED, "reason": "NoKindMatch", "message": why}
                  for key, why in refused.items()})
    print(json.dumps(found, indent=2, ensure_ascii=False))
    if interrupted:
        print("[tanuki local] interrupted; apply again to resume", flush=True)
        return 130
    return 1 if incomplete(found) else 0
