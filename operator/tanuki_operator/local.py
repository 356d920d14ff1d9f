"""``tanuki local apply -f chain.yaml``: run tanuki custom resources on this machine.

The embedded runner: the same CR YAML a cluster gets, validated by the same models, its lineage
resolved the same way, each stage's recipe rendered by the same code — then each stage runs as a
``tanuki <stage>`` subprocess in dependency order instead of as a Kubernetes Job. Each PVC
(``spec.storage.claimName``) is a directory under ``--workdir``; statuses persist in
``WORKDIR/.tanuki/status.json``, so a later apply can refer to what an earlier one produced.

ModelServers are served from the start (vLLM processes behind ``vllm-router``, see
``local_serving``), each as soon as its upstream succeeded, so a batch stage of the same file can
use one (a DPOJob's judge, an EvalJob's targets): it waits until the server is Running. The
command then keeps serving, and watching the file for changes, until interrupted or
``--serve-for`` seconds have passed.

Applying a file again behaves as in a cluster: a stage that succeeded with the same spec is not
run again, a failed one is retried (resuming from its newest checkpoint), and a changed spec of a
stage that already ran is refused naming the fields (``tanuki local delete`` forgets a resource
and its outputs so it can run anew).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tanuki_operator.api.common import JobSpec, Phase
from tanuki_operator.api.modelserver import ModelServerSpec
from tanuki_operator.handlers.reconcile import STAGE_NOT_AVAILABLE, changed_fields, spec_record
from tanuki_operator.lineage import referenced, resolve, settling
from tanuki_operator.local_serving import RUNNER_STOPPED, TICK_SECONDS, LocalModelServer, StatusStore
from tanuki_operator.render.common import Owner, output_dir
from tanuki_operator.stages import STAGES, Workload, not_available_message
from tanuki_operator.validation import summarize, validate_spec


def make_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub = parser.add_subparsers(dest="local_command", required=True)
    apply = sub.add_parser("apply", help="run the resources of a YAML file in dependency order")
    apply.add_argument("-f", "--filename", type=Path, required=True)
    apply.add_argument("--workdir", type=Path, default=Path("tanuki-local"),
                       help="each PVC becomes WORKDIR/<claimName> (default tanuki-local)")
    apply.add_argument("--nproc-per-node", type=int, default=2, help="training processes for torchrun stages")
    apply.add_argument("--cpus", type=float, default=None,
                       help="cores the batch stages share: stages whose upstreams are ready run at the same time "
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


OUTPUT_KEYS = ("url", "checkpoint", "dataset", "report", "tokenizer")
"""What ``-o wide`` shows of a status's outputs: the first of these it has."""


def status_table(statuses: dict[str, dict[str, Any]], wide: bool, now: float) -> str:
    """``kubectl get``-style rows (pure): kind/name, phase, reason, wall time, age; wide adds the main
    output and the message."""
    header = ["NAME", "PHASE", "PROGRESS", "REASON", "WALL", "AGE"] + (["OUTPUT", "MESSAGE"] if wide else [])
    rows = [header]
    for key, status in statuses.items():
        kind, _, name = key.partition("/")
        wall = status.get("wallSeconds")
        progress = status.get("progress") if status.get("phase") == Phase.RUNNING else None
        row = [f"{kind.lower()}/{name}", str(status.get("phase", "")),
               f"{progress['step']}/{progress['totalSteps']}" if progress else "", str(status.get("reason", "")),
               "" if wall is None else _age(wall), _age(now - status["since"]) if "since" in status else ""]
        if wide:
            outputs = status.get("outputs") or {}
            row += [str(next((outputs[k] for k in OUTPUT_KEYS if k in outputs), "")),
                    str(status.get("message", "")).replace("\n", " ")[:100]]
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


@dataclass
class Launch:
    """A batch stage whose upstreams are ready: what to run and what its status will record."""

    key: str
    """``Kind/name``."""
    command: list[str]
    env: dict[str, str]
    out: Path
    """Its output directory (``outputs.json`` lands there)."""
    record: dict[str, Any]
    """The spec it runs (a later apply refuses changes to it)."""
    upstream: list[str]
    cpus: float
    """Its ``spec.resources.cpu``: what it takes of the runner's ``--cpus``."""


class RunningStage:
    """One stage program running in a thread of the runner."""

    def __init__(self, launch: Launch, store: StatusStore | None, prefix: str) -> None:
        self.launch, self.store, self.prefix = launch, store, prefix
        self.status: dict[str, Any] | None = None
        self.process: subprocess.Popen[str] | None = None
        self.stopping = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, name=f"stage-{launch.key}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        launch = self.launch
        try:
            code = run_stage(launch.command, launch.env, launch.key, self.store, launch.upstream, self.prefix, self)
        except Exception as exc:  # the runner reports it as the stage's failure and goes on
            code, message = None, f"could not run: {type(exc).__name__}: {exc}"
        else:
            message = f"stage exited with {code}"
        wall = round(time.monotonic() - self.started, 1)
        if self.stopping.is_set():  # keeps the progress it had reached
            last = self.store.load().get(launch.key, {}) if self.store is not None else {}
            self.status = {**last, "phase": Phase.SUSPENDED, "reason": RUNNER_STOPPED, "spec": launch.record,
                           "wallSeconds": wall, "message": "local runner stopped mid-stage; tanuki local apply resumes it"}
        elif code != 0:
            self.status = {"phase": Phase.FAILED, "reason": "StageFailed", "message": message, "spec": launch.record,
                           "wallSeconds": wall}
        else:
            outputs = json.loads((launch.out / "outputs.json").read_text())
            self.status = {"phase": Phase.SUCCEEDED, "reason": "Completed", "outputs": outputs, "spec": launch.record,
                           "wallSeconds": wall, "message": str(next((outputs[key] for key in ("checkpoint", "dataset", "report")
                                                                     if key in outputs), ""))}

    def stop(self) -> None:
        """Terminate the program (SIGTERM, then SIGKILL after 20 s); a rerun resumes it from its checkpoint."""
        self.stopping.set()
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.thread.join(timeout=30)


def queue(resources: list[dict[str, Any]], store: StatusStore) -> None:
    """Record the batch stages about to run as Pending (Queued) unless they have a status: a server
    reading one of them then waits for it instead of failing on an upstream that does not exist."""
    stored = store.load()
    for resource in resources:
        key = f"{resource['kind']}/{resource['metadata']['name']}"
        if resource["kind"] != "ModelServer" and key not in stored:
            store.update(key, {"phase": Phase.PENDING, "reason": "Queued", "message": "queued by tanuki local apply"})


def cpu_count(quantity: str) -> float:
    """A Kubernetes CPU quantity ("2", "500m") in cores."""
    from kubernetes.utils.quantity import parse_quantity

    return float(parse_quantity(quantity))  # type: ignore[no-untyped-call]  # kubernetes ships py.typed but leaves it unannotated


def run_chain(resources: list[dict[str, Any]], workdir: Path, nproc: int, store: StatusStore | None = None,
              servers: Sequence[LocalModelServer] = (), ready_timeout: float = 900,
              cpus: float | None = None) -> dict[str, dict[str, Any]]:
    """Run every batch resource whose upstreams succeeded; returns name → status (phase, message, outputs).

    Stages whose upstreams are ready run concurrently while the ``spec.resources.cpu`` of those
    running fits in ``cpus`` (default: this machine's cores), as a scheduler places pods; one that
    asks for more than there is runs alone. Upstreams this file does not declare are looked up in
    the workdir's stored statuses. A stage reading a ModelServer among ``servers`` waits (up to
    ``ready_timeout`` seconds without progress) until it serves, or until it can no longer. The
    caller has ``queue``d the resources before starting the servers."""
    store = store or StatusStore(workdir)
    capacity = cpus if cpus is not None else float(os.cpu_count() or 1)
    statuses: dict[tuple[str, str], dict[str, Any]] = {}
    stored_statuses = store.load()
    for key, stored in stored_statuses.items():
        stored_kind, _, stored_name = key.partition("/")
        statuses[stored_kind, stored_name] = stored
    declared = {(resource["kind"], resource["metadata"]["name"]) for resource in resources} | set(statuses)
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in resources:  # re-applied: decided again (skipped when unchanged and succeeded)
        resource_key = (resource["kind"], resource["metadata"]["name"])
        if resource_key in statuses:
            previous[resource_key] = statuses.pop(resource_key)
    pending = [resource for resource in resources if resource["kind"] != "ModelServer"]
    live = {server.name: server for server in servers}
    running: dict[tuple[str, str], RunningStage] = {}
    width = max((len(resource["metadata"]["name"]) for resource in pending), default=0)

    def starting(kind: str, name: str) -> bool:
        """A ModelServer this apply serves that is not ready for its consumers yet but still may be."""
        server = live.get(name) if kind == "ModelServer" else None
        return server is not None and not server.blocked and server.status.get("phase") != Phase.FAILED \
            and (server.status.get("phase") != Phase.RUNNING or settling("ModelServer", server.status) is not None)

    def finish(kind: str, name: str, status: dict[str, Any]) -> None:
        statuses[kind, name] = status
        if not status.pop("refused", False) and not status.pop("unchanged", False):
            store.update(f"{kind}/{name}", status)
        reason = f" ({status['reason']})" if status.get("reason") else ""
        print(f"[tanuki local] {kind}/{name}: {status['phase']}{reason}: {status.get('message', '')}", flush=True)

    deadline = time.monotonic() + ready_timeout
    try:
        while pending or running:
            progressed = False
            for (kind, name), stage in list(running.items()):
                if stage.status is not None:
                    del running[kind, name]
                    finish(kind, name, {**stage.status, "upstream": stage.launch.upstream})
                    progressed = True
            for key, served in store.load().items():  # the servers' threads keep these current
                if key.startswith("ModelServer/") and key.partition("/")[2] in live:
                    statuses["ModelServer", key.partition("/")[2]] = served
            used = sum(stage.launch.cpus for stage in running.values())
            for resource in list(pending):
                kind, name = resource["kind"], resource["metadata"]["name"]
                planned = step(resource, workdir, nproc, statuses, declared, previous.get((kind, name)), starting)
                if planned is None:
                    continue  # waiting for an upstream that may still run
                if isinstance(planned, Launch):
                    if running and used + planned.cpus > capacity:
                        continue  # no room yet: it starts when a running stage ends
                    print(f"[tanuki local] {kind}/{name}: running {' '.join(planned.command[2:])}", flush=True)
                    running[kind, name] = RunningStage(planned, store, f"{name.ljust(width)} | ")
                    used += planned.cpus
                else:
                    finish(kind, name, {**planned, "upstream": referenced(resource.get("spec"))})
                pending.remove(resource)
                progressed = True
            if progressed:
                deadline = time.monotonic() + ready_timeout
            elif running or (any(starting("ModelServer", name) for name in live) and time.monotonic() < deadline):
                time.sleep(TICK_SECONDS)
            else:
                for resource in pending:
                    status = {"phase": Phase.WAITING, "reason": "UpstreamPending", "message": "upstream never succeeded"}
                    key = f"{resource['kind']}/{resource['metadata']['name']}"
                    statuses[resource["kind"], resource["metadata"]["name"]] = status
                    if (stored_statuses.get(key) or {}).get("reason") in (None, "Queued"):  # not an earlier run's
                        store.update(key, status)
                break
    except BaseException:  # interrupted: running stages go too (a rerun resumes them from their checkpoints)
        for (kind, name), stage in running.items():
            stage.stop()
            if stage.status is not None:
                statuses[kind, name] = {**stage.status, "upstream": stage.launch.upstream}
                store.update(f"{kind}/{name}", statuses[kind, name])
        raise
    ran = {(resource["kind"], resource["metadata"]["name"]) for resource in resources}
    return {f"{kind}/{name}": status for (kind, name), status in statuses.items() if (kind, name) in ran}


def _refusal(stored: dict[str, Any] | None, record: dict[str, Any], kind: str) -> str | None:
    """A stage that already ran keeps its spec (as its Job would in a cluster)."""
    if not stored or "spec" not in stored or stored.get("phase") not in (Phase.SUCCEEDED, Phase.FAILED, Phase.RUNNING):
        return None
    fields = changed_fields(stored["spec"], record)
    if not fields:
        return None
    return (f"{', '.join(fields[:5])}: cannot change once the stage has run; revert the change, or "
            f"`tanuki local delete` the {kind} (its outputs go too) to run the new spec")


def step(resource: dict[str, Any], workdir: Path, nproc: int, statuses: dict[tuple[str, str], dict[str, Any]],
         declared: set[tuple[str, str]], stored: dict[str, Any] | None = None,
         starting: Callable[[str, str], bool] = lambda kind, name: False) -> dict[str, Any] | Launch | None:
    """Decide one resource: its final status (invalid, refused, unchanged, waiting on what will not
    come), a ``Launch`` when its upstreams are ready, or None when it must wait for an upstream that
    has not run yet (or a ModelServer that is still ``starting``)."""
    kind, name = resource["kind"], resource["metadata"]["name"]
    stage = STAGES.get(kind)
    if stage is None:
        return {"phase": Phase.VALIDATION_FAILED, "reason": "InvalidSpec", "message": f"kind: unknown kind {kind!r}"}
    model, errors = validate_spec(kind, localised(resource.get("spec") or {}, workdir))
    if errors:
        return {"phase": Phase.VALIDATION_FAILED, "reason": "InvalidSpec", "message": summarize(errors)}
    program = stage.program
    if program is None:
        return {"phase": Phase.FAILED, "reason": STAGE_NOT_AVAILABLE, "message": not_available_message(stage)}
    assert isinstance(model, JobSpec), f"{kind}: a batch stage has a job spec"
    assert program.command is not None, f"{kind}: a batch stage names its tanuki command"
    record = spec_record(model)
    if stored is not None and (refused := _refusal(stored, record, kind)) is not None:
        return {**stored, "reason": "ImmutableFieldChanged", "message": refused, "refused": True}
    if stored and stored.get("phase") == Phase.SUCCEEDED:
        return {**stored, "message": f"unchanged, already succeeded: {stored.get('message', '')}", "unchanged": True}
    unfinished: list[tuple[str, str]] = []

    def lookup(upstream_kind: str, upstream_name: str) -> dict[str, Any] | None:
        if (upstream_kind, upstream_name) not in declared:
            return None  # not in the file: "does not exist"
        if (upstream_kind, upstream_name) not in statuses or starting(upstream_kind, upstream_name):
            unfinished.append((upstream_kind, upstream_name))
            return {"phase": Phase.PENDING}
        return statuses[upstream_kind, upstream_name]

    resolution = resolve(model, model.storage, lookup)
    if resolution.errors:
        return {"phase": Phase.WAITING, "reason": "UpstreamUnavailable", "message": "; ".join(resolution.errors)}
    if resolution.waiting_for:
        if unfinished:
            return None
        return {"phase": Phase.WAITING, "reason": "UpstreamPending",
                "message": "upstream did not succeed: " + ", ".join(resolution.waiting_for)}
    owner = Owner(kind=kind, name=name, namespace="local", uid="local")
    out = Path(output_dir(owner, model.storage))
    out.mkdir(parents=True, exist_ok=True)
    recipe_path = out / "cr-recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(model.stage_recipe(resolution.inputs), sort_keys=False, allow_unicode=True))
    command = [sys.executable, "-m", "tanuki_pipelines.cli", program.command, "--config", str(recipe_path),
               "--output-dir", str(out)]
    if stage.workload_of(model) is Workload.TORCHRUN or program.module is not None:
        command += ["--nproc-per-node", str(nproc)]  # programs that start torchrun themselves take it too
    env = dict(os.environ)
    for variable, ref in model.secrets().items():  # Secrets reach the program as files, as in a pod
        path = workdir / "secrets" / ref.name / ref.key
        if not path.is_file():
            return {"phase": Phase.FAILED, "reason": "SecretMissing",
                    "message": f"Secret {ref.name} has no key {ref.key} (locally: the file {path})", "spec": record}
        env[f"{variable}_FILE"] = str(path.resolve())
    return Launch(key=f"{kind}/{name}", command=command, env=env, out=out, record=record,
                  upstream=referenced(resource.get("spec")), cpus=cpu_count(model.resources.cpu))


PROGRESS_EVERY_SECONDS = 15.0


def run_stage(command: list[str], env: dict[str, str], key: str, store: StatusStore | None,
              upstream: list[str], prefix: str = "", handle: RunningStage | None = None) -> int:
    """Run a stage program, passing its output through (each line after ``prefix``); its progress
    lines become the stored status (phase Running, step/total, ETA) and one ``[tanuki local]`` line
    every few seconds. ``handle.process`` is the program while it runs (for stopping it)."""
    from tanuki_pipelines.outputs import parse_progress

    first: tuple[float, int] | None = None  # (time, step) of the first progress line: the rate is measured from it
    printed = 0.0
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace")
    if handle is not None:
        handle.process = process
    assert process.stdout is not None
    for line in process.stdout:
        record = parse_progress(line)
        if record is None or "summary" not in record:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()
            continue
        now = time.monotonic()
        first = first or (now, record["step"])
        done = record["step"] - first[1]
        eta = round((now - first[0]) / done * (record["totalSteps"] - record["step"])) if done > 0 else None
        left = f", ETA {eta} s" if eta is not None else ""
        progress = {"step": record["step"], "totalSteps": record["totalSteps"], "etaSeconds": eta}
        if store is not None and not (handle is not None and handle.stopping.is_set()):
            store.update(key, {"phase": Phase.RUNNING, "reason": "StageRunning", "upstream": upstream,
                               "message": record["summary"] + left, "progress": progress})
        if now - printed >= PROGRESS_EVERY_SECONDS or record["step"] == record["totalSteps"]:
            printed = now
            loss = f", loss {record['loss']:.3f}" if isinstance(record.get("loss"), (int, float)) else ""
            print(f"[tanuki local] {key}: Running {record['summary']}{loss}{left}", flush=True)
    return process.wait()


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM: stop like Ctrl-C (a running stage is killed, its servers stopped)


def start_servers(path: Path, resources: list[dict[str, Any]], workdir: Path,
                  store: StatusStore) -> list[LocalModelServer]:
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
    """Forget resources: their statuses and their output directories."""
    import shutil

    store = StatusStore(workdir)
    forgotten = []
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        model, errors = validate_spec(kind, localised(resource.get("spec") or {}, workdir))
        if not errors and isinstance(model, (JobSpec, ModelServerSpec)):  # every kind's spec has its storage
            out = Path(output_dir(Owner(kind=kind, name=name, namespace="local", uid="local"), model.storage))
            shutil.rmtree(out, ignore_errors=True)
        if store.remove(f"{kind}/{name}"):
            forgotten.append(f"{kind}/{name}")
    return forgotten


def main(args: argparse.Namespace) -> int:
    if args.local_command == "get":
        stored = StatusStore(args.workdir).load()
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
    store = StatusStore(args.workdir)
    queue(resources, store)  # before the servers' first look at their upstreams
    servers = start_servers(args.filename, resources, args.workdir, store)
    statuses: dict[str, dict[str, Any]] = {}
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        statuses = run_chain(resources, args.workdir, args.nproc_per_node, store, servers, args.ready_timeout,
                             args.cpus)
        if servers:
            time.sleep(2 * TICK_SECONDS)  # one reconcile each before judging them
            wait_until_serving(servers, args.ready_timeout)
            if args.serve_for != 0 and any(server.status.get("phase") == Phase.RUNNING for server in servers):
                print("[tanuki local] serving; edit the file to roll out a new revision; Ctrl-C stops", flush=True)
                threading.Event().wait(args.serve_for)
    except KeyboardInterrupt:
        interrupted = not statuses  # stopping while serving is how serving ends
    finally:
        for server in servers:  # no vLLM process outlives the runner
            server.stop()
            statuses[f"ModelServer/{server.name}"] = {k: v for k, v in server.status.items() if k != "rollout"}
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps({name: {k: v for k, v in status.items() if k not in ("outputs", "spec")}
                      for name, status in statuses.items()}, indent=2, ensure_ascii=False))
    # a batch stage that did not succeed (failed, refused, or left waiting) or a server that failed
    incomplete = [name for name, status in statuses.items()
                  if Phase(status["phase"]).broken or status.get("reason") == "ImmutableFieldChanged"
                  or (not name.startswith("ModelServer/") and status["phase"] != Phase.SUCCEEDED)]
    if interrupted:
        print("[tanuki local] interrupted; apply again to resume", flush=True)
        return 130
    return 1 if incomplete else 0
