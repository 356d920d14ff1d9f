"""``tanuki local apply -f chain.yaml``: run tanuki custom resources on this machine.

The operator runs here as it runs in a cluster: its controller and reconcilers (the same stage
registry, validation, lineage, rendering and typed status, with conditions and
``observedGeneration``) against the embedded object store (``embedded.store``, the file
``WORKDIR/.tanuki/objects.json``), and the local kubelet (``embedded.kubelet``) runs the Jobs
they render as processes within ``--cpus``: each PVC (``spec.storage.claimName``) is a directory
under ``--workdir``, Secrets are files ``WORKDIR/secrets/<name>/<key>``. A later apply, ``tanuki
local get`` and the report read the same store.

ModelServers run the same way: the operator renders their Deployments, router and Services, the
local kubelet runs the vLLM and vllm-router pods (probes, restarts, rolling updates, the router's
service discovery) and serves each Service on a local port, so the status URL is where the
OpenAI API answers. A batch stage of the same file can use a server (a DPOJob's judge, an
EvalJob's targets): it waits until the server is Running. Once every batch stage settled, the
command keeps serving, and applies the file again whenever it changes (a new model or engine
setting rolls out as a canary), until interrupted or ``--serve-for`` seconds have passed.

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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tanuki_operator.api import API_VERSION
from tanuki_operator.api.common import JobSpec, Phase, Status
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.embedded.store import ObjectStore
from tanuki_operator.lineage import referenced, settling
from tanuki_operator.phases import stamp_seconds
from tanuki_operator.preflight import SECRET_MISSING, mounted_secrets
from tanuki_operator.render.common import Owner, output_dir
from tanuki_operator.resources import NAMESPACE, load_resources, localised, manifest_of, store_of, unknown
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
    apply.add_argument("--dry-run", action="store_true",
                       help="run nothing: say what each resource would do now, and its problems (as tanuki check)")
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


TICK_SECONDS = 0.5
OUTPUT_KEYS = ("url", "checkpoint", "dataset", "tokens", "report", "tokenizer")
"""What ``-o wide`` shows of a status's outputs: the first of these it has."""


def wall_seconds(status: dict[str, Any], now: float) -> float | None:
    """From the stage's start to its completion (or to ``now`` while it runs)."""
    started, ended = stamp_seconds(status.get("startTime")), stamp_seconds(status.get("completionTime"))
    return None if started is None else (ended or now) - started


def summary(status: dict[str, Any]) -> dict[str, Any]:
    """Phase, reason and message of a status as ``kubectl get`` would show them: a refused edit
    (Valid=False) first, else the Ready condition's reason."""
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    valid, ready = conditions.get("Valid") or {}, conditions.get("Ready") or {}
    chosen = valid if valid.get("status") == "False" else ready
    return {"phase": status.get("phase", ""), "reason": chosen.get("reason") or "",
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
        since = stamp_seconds(ready.get("lastTransitionTime"))
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


SETTLE_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 15.0


def statuses(source: Path | ObjectStore) -> dict[str, dict[str, Any]]:
    """``Kind/name`` → status of each tanuki resource in a workdir (or store), with ``upstream``: the
    resources its spec reads from, for lineage pictures."""
    store = store_of(source) if isinstance(source, Path) else source
    return {f"{obj['kind']}/{obj['metadata']['name']}": {**(obj.get("status") or {}),
                                                           "upstream": referenced(obj.get("spec"))}
            for obj in store.all() if obj["apiVersion"] == API_VERSION}


class LocalCluster:
    """The operator's own controller and reconcilers against the embedded store, with the local kubelet
    running the pods it renders: a cluster's control plane and one node, in this process."""

    def __init__(self, workdir: Path, cpus: float | None, kinds: set[str]) -> None:
        from tanuki_common.cpu_vllm import set_cpu_vllm_defaults
        from tanuki_operator.embedded.kubelet import Kubelet
        from tanuki_operator.handlers.controller import Controller
        from tanuki_operator.render.common import Settings

        self.store = store_of(workdir)
        environ = dict(os.environ)
        set_cpu_vllm_defaults(environ)  # what the serving image sets for vLLM on CPU
        self.kubelet = Kubelet(self.store, workdir, cpus, environ=environ)
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


FAILING_REASONS = ("ReplicaFailing", "PodFailing")
"""Ready-condition reasons of a server whose pods keep failing (ModelServer, Arena)."""


def server_starting(status: dict[str, Any], kind: str = "ModelServer") -> bool:
    """The server (a ModelServer, an Arena) may still come to serve what its spec asks without
    anything from outside: it is starting pods or rolling out. Not when a pod keeps failing, an
    upstream failed or is missing, or its spec is invalid."""
    phase = Phase.of(status.get("phase"))
    if phase is Phase.RUNNING:
        return settling(kind, status) is not None
    return phase in (None, Phase.PENDING) and summary(status)["reason"] not in FAILING_REASONS


def is_server(kind: str) -> bool:
    """A kind that keeps running once ready (ModelServer, Arena), not a batch stage."""
    return kind in STAGES and not STAGES[kind].workload.batch


def run_chain(cluster: LocalCluster, keys: list[tuple[str, str]], servers: list[str], ready_timeout: float = 900) -> None:
    """Until the batch resources ``keys`` settle: each runs once its upstreams succeeded, a stage
    reading one of the servers ``servers`` (``Kind/name``) waits (up to ``ready_timeout`` seconds)
    until it serves."""

    def starting(kind: str, name: str) -> bool:
        return f"{kind}/{name}" in servers and server_starting(stored_status(cluster.store, f"{kind}/{name}"), kind)

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


def stored_status(store: ObjectStore, key: str) -> dict[str, Any]:
    """The status of the server ``Kind/name``."""
    kind, name = key.split("/", 1)
    found = store.get(API_VERSION, kind, NAMESPACE, name)
    return (found or {}).get("status") or {}


def _server_starting(store: ObjectStore, servers: list[str], key: str) -> bool:
    """``server_starting``, or waiting only for servers of the file that are starting (an Arena for
    its ModelServers)."""
    kind, name = key.split("/", 1)
    status = stored_status(store, key)
    if server_starting(status, kind):
        return True
    if Phase.of(status.get("phase")) is not Phase.WAITING or summary(status)["reason"] != "UpstreamPending":
        return False
    found = store.get(API_VERSION, kind, NAMESPACE, name) or {}
    upstreams = [ref for ref in referenced(found.get("spec")) if ref in servers]
    return any(server_starting(stored_status(store, ref), ref.split("/", 1)[0]) for ref in upstreams)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop like Ctrl-C (a running stage is killed, its servers stopped)


def wait_until_serving(store: ObjectStore, servers: list[str], timeout: float) -> set[str]:
    """Until each server serves what its spec asks, no rollout in flight, or cannot (or time is out);
    prints each one's state and endpoint. Returns the servers that serve."""
    deadline = time.monotonic() + timeout
    while any(_server_starting(store, servers, key) for key in servers) and time.monotonic() < deadline:
        time.sleep(TICK_SECONDS)
    serving = set()
    for key in servers:
        status = stored_status(store, key)
        print(f"[tanuki local] {key}: {status.get('phase')}: {status.get('message', '')}", flush=True)
        if status.get("phase") == Phase.RUNNING:
            serving.add(key)
            outputs = status["outputs"]
            if key.startswith("ModelServer/"):
                print(f"[tanuki local] {key}: OpenAI API at {outputs['url']} (model {outputs['model']!r})", flush=True)
            else:
                print(f"[tanuki local] {key}: open {outputs['url']}/ in a browser", flush=True)
    return serving


def serve(path: Path, cluster: LocalCluster, workdir: Path, seconds: float | None) -> None:
    """Keep serving for ``seconds`` (None: until interrupted), applying the file again each time it
    changes, as ``kubectl apply`` after an edit."""
    from tanuki_common.errors import BadInputError

    deadline = None if seconds is None else time.monotonic() + seconds
    seen = path.stat().st_mtime_ns
    while deadline is None or time.monotonic() < deadline:
        time.sleep(TICK_SECONDS)
        try:
            changed = path.stat().st_mtime_ns
            if changed == seen:
                continue
            seen = changed
            resources = [r for r in load_resources(path) if unknown(r) is None]
        except (OSError, yaml.YAMLError, BadInputError) as exc:  # keep serving what was applied last
            print(f"[tanuki local] {path}: not applied: {exc}", flush=True)
            continue
        print(f"[tanuki local] {path} changed: applying it again", flush=True)
        apply_resources(cluster.store, resources, workdir)


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


def secret_files(workdir: Path, resource: dict[str, Any]) -> str:
    """The files of the Secret keys the resource's pods mount that the workdir lacks (locally a
    Secret is ``WORKDIR/secrets/<name>/<key>``)."""
    model, _ = validate_spec(resource["kind"], resource.get("spec"))
    files = [workdir.resolve() / "secrets" / ref.name / ref.key for _, ref in (mounted_secrets(model) if model else [])]
    return ", ".join(str(file) for file in files if not file.is_file())


def incomplete(found: dict[str, dict[str, Any]], unserved: set[str]) -> list[str]:
    """Batch stages that did not succeed (failed, refused, waiting) and servers that did not serve."""
    return [key for key, status in found.items()
            if Phase(status["phase"] or Phase.PENDING).broken or status.get("reason") == "ImmutableFieldChanged"
            or key in unserved or (not is_server(key.split("/", 1)[0]) and status["phase"] != Phase.SUCCEEDED)]


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
    if args.dry_run:
        from tanuki_operator.check import run

        return run(resources, args.workdir)
    os.environ.setdefault("TANUKI_POLL_SECONDS", "2")  # progress from the pods' logs: read before the handlers load
    refused = {f"{r['kind']}/{r['metadata']['name']}": why for r in resources if (why := unknown(r)) is not None}
    for key, why in refused.items():
        print(f"[tanuki local] {key}: {why}", flush=True)
    resources = [r for r in resources if unknown(r) is None]
    batch = [(r["kind"], r["metadata"]["name"]) for r in resources if not is_server(r["kind"])]
    servers = [f"{r['kind']}/{r['metadata']['name']}" for r in resources if is_server(r["kind"])]
    cluster = LocalCluster(args.workdir, args.cpus, kinds=set(STAGES))
    apply_resources(cluster.store, resources, args.workdir)
    serving: set[str] = set()
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        cluster.start()
        run_chain(cluster, batch, servers, args.ready_timeout)
        if servers:
            serving = wait_until_serving(cluster.store, servers, args.ready_timeout)
            if args.serve_for != 0 and serving:
                print("[tanuki local] serving; edit the file to roll out a new revision; Ctrl-C stops", flush=True)
                serve(args.filename, cluster, args.workdir, args.serve_for)
    except KeyboardInterrupt:
        interrupted = not servers or serving != set(servers)
    finally:
        cluster.stop()  # no vLLM process outlives the runner
        signal.signal(signal.SIGTERM, previous)
    applied = {f"{r['kind']}/{r['metadata']['name']}" for r in resources}
    found = {key: summary(status) for key, status in statuses(cluster.store).items() if key in applied}
    found.update({key: {"phase": Phase.VALIDATION_FAILED, "reason": "NoKindMatch", "message": why}
                  for key, why in refused.items()})
    print(json.dumps(found, indent=2, ensure_ascii=False))
    by_key = {f"{r['kind']}/{r['metadata']['name']}": r for r in resources}
    for key, status in found.items():
        if status["reason"] == SECRET_MISSING:
            print(f"[tanuki local] {key}: locally a Secret is a directory of files, one per key: "
                  f"{secret_files(args.workdir, by_key[key])}", flush=True)
    if interrupted:
        print("[tanuki local] interrupted; apply again to resume", flush=True)
        return 130
    unserved = {key for key in servers if key not in serving}
    return 1 if incomplete(found, unserved) else 0
