"""ModelServers in the local runner: the CR is re-read every tick, like a controller watching it.

Editing the applied YAML (a new ``spec.model``, engine or rollout settings) or an upstream job
publishing a new checkpoint rolls the new revision out through the same ``rollout.decide`` the
operator uses. Its status is the ModelServer's in the embedded store (``WORKDIR/.tanuki/objects.json``);
Secrets are files ``WORKDIR/secrets/<name>/<key>`` (what a mounted Secret volume looks like).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tanuki_operator.api import API_VERSION
from tanuki_operator.api.common import Phase
from tanuki_operator.api.modelserver import INITIAL_MODEL_REASON, ModelServerSpec
from tanuki_operator.embedded.store import ObjectStore, patch_between
from tanuki_operator.lineage import initial_stand_in, referenced, resolve
from tanuki_operator.validation import summarize, validate_spec

if TYPE_CHECKING:
    from tanuki_serving.fleet import FleetSpec, FleetStatus
    from tanuki_serving.rollout import RolloutRecord

TICK_SECONDS = 0.5
STUCK_PHASES = (Phase.WAITING, Phase.SUSPENDED)
"""Upstream phases nothing in this process will move on (another apply may, later)."""
RUNNER_STOPPED = "LocalRunnerStopped"
NAMESPACE = "local"
"""The namespace of everything ``tanuki local`` applies."""


def write_status(store: ObjectStore, name: str, status: dict[str, Any]) -> None:
    """Replace the ModelServer's status with ``status``: fields it no longer has are removed, nested
    ones too (a promoted canary leaves ``rollout``, which a plain merge patch would keep)."""
    current = (store.get(API_VERSION, "ModelServer", NAMESPACE, name) or {}).get("status") or {}
    store.patch_status(API_VERSION, "ModelServer", NAMESPACE, name, patch_between(current, status),
                       manager="tanuki-local-fleet")


def stored_status(store: ObjectStore, kind: str, name: str) -> dict[str, Any] | None:
    found = store.get(API_VERSION, kind, NAMESPACE, name)
    return None if found is None else found.get("status") or {}


def earlier_rollouts(status: dict[str, Any] | None) -> list[RolloutRecord]:
    """The rollout history an earlier runner left in the status: like a CR's status, it outlives
    the process that reconciled it (a rerun of a finished chain serves its last model directly).
    Records that no longer parse are dropped: they are history, not instructions."""
    from pydantic import ValidationError

    from tanuki_serving.rollout import RolloutRecord

    records = []
    for record in ((status or {}).get("rollout") or {}).get("history") or []:
        with contextlib.suppress(ValidationError):
            records.append(RolloutRecord.model_validate(record))
    return records


def secret_value(workdir: Path, name: str, key: str) -> str | None:
    path = workdir / "secrets" / name / key
    return path.read_text().strip() if path.is_file() else None


def find_resource(path: Path, kind: str, name: str) -> dict[str, Any] | None:
    for document in yaml.safe_load_all(path.read_text()):
        if isinstance(document, dict) and document.get("kind") == kind \
                and (document.get("metadata") or {}).get("name") == name:
            return document
    return None


@dataclass
class Unservable:
    """Why the file, as it is now, gives nothing to serve."""

    phase: Phase
    """Failed (the spec or its inputs are wrong) or Waiting (an upstream has not produced yet)."""
    message: str
    reason: str = "InvalidSpec"


class LocalModelServer:
    """Serve one ModelServer of a YAML file until stopped."""

    def __init__(self, filename: Path, name: str, workdir: Path, store: ObjectStore,
                 localise: Callable[[dict[str, Any], Path], dict[str, Any]]) -> None:
        from tanuki_serving.fleet import LocalFleet

        self.filename, self.name, self.workdir, self.store = filename, name, workdir, store
        self.localise = localise
        self.key = f"ModelServer/{name}"
        self.fleet = LocalFleet(name, workdir / ".tanuki" / "logs" / name)
        self.fleet.state.history = earlier_rollouts(stored_status(store, "ModelServer", name))
        self.status: dict[str, Any] = {"phase": Phase.PENDING, "message": "starting"}
        self.spec: FleetSpec | None = None
        self.upstream: list[str] = []
        """What its spec reads from (``Kind/name``), for lineage pictures."""
        self.standing_in: str | None = None
        """What spec.model waits for while spec.initialModel serves in its stead."""
        self.blocked = False
        """Waiting for upstreams no running stage will finish (the caller stops waiting for it)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def desired(self) -> FleetSpec | Unservable:
        """The FleetSpec the file asks for now, or ``Unservable``."""
        from tanuki_serving.fleet import FleetSpec

        try:
            resource = find_resource(self.filename, "ModelServer", self.name)
        except (OSError, yaml.YAMLError) as exc:
            return Unservable(Phase.FAILED, f"{self.filename}: {exc}", "UnreadableFile")
        if resource is None:
            return Unservable(Phase.FAILED, f"{self.filename} no longer declares ModelServer/{self.name}", "NotDeclared")
        self.upstream = referenced(resource.get("spec"))
        model, errors = validate_spec("ModelServer", self.localise(resource.get("spec") or {}, self.workdir))
        if errors:
            return Unservable(Phase.FAILED, "invalid spec: " + summarize(errors))
        assert isinstance(model, ModelServerSpec), "a valid ModelServer spec is a ModelServerSpec"
        def lookup(kind: str, name: str) -> dict[str, Any] | None:
            return stored_status(self.store, kind, name)

        resolution = resolve(model, model.storage, lookup)
        stable = self.fleet.state.stable
        stand_in = initial_stand_in(resolution, stable.model if stable is not None else None)
        self.standing_in = None if stand_in is None else ", ".join(resolution.waiting_for)
        # an upstream that failed or is missing, or one waiting on nothing this process runs
        self.blocked = stand_in is None and (bool(resolution.errors) or (bool(resolution.waiting_for) and all(
            any(f"({phase})" in waiting for phase in STUCK_PHASES) for waiting in resolution.waiting_for)))
        if stand_in is None and (resolution.errors or resolution.waiting_for):
            if resolution.errors:
                return Unservable(Phase.WAITING, "; ".join(resolution.errors), "UpstreamUnavailable")
            return Unservable(Phase.WAITING, "waiting for " + ", ".join(resolution.waiting_for), "UpstreamPending")
        api_key = None
        if model.auth.apiKey is not None:
            ref = model.auth.apiKey
            api_key = secret_value(self.workdir, ref.name, ref.key)
            if api_key is None:
                return Unservable(Phase.FAILED, f"spec.auth.apiKey: Secret {ref.name} has no key {ref.key} (locally: "
                                                f"the file {self.workdir / 'secrets' / ref.name / ref.key})", "SecretMissing")
        elif model.auth.required:
            return Unservable(Phase.FAILED, "spec.auth.apiKey: required")
        return FleetSpec(name=self.name, model=stand_in or resolution.inputs["model"], engine=model.engine, router=model.router,
                         rollout=model.rollout, replicas=model.total_replicas(), api_key=api_key)

    def tick(self) -> dict[str, Any]:
        desired = self.desired()
        if not isinstance(desired, Unservable):
            self.spec = desired
            status = as_status(self.fleet.tick(desired))
            if self.standing_in is not None and status["phase"] == Phase.RUNNING:
                status["reason"] = INITIAL_MODEL_REASON
                status["message"] = f"serving spec.initialModel until {self.standing_in}"
        elif self.spec is not None:  # keep serving what was good; say why the new spec is not used
            status = as_status(self.fleet.tick(self.spec))
            stable = self.fleet.state.stable.revision if self.fleet.state.stable else None
            status["message"] = f"{desired.message}; keeps serving revision {stable}"
        else:
            status = {"phase": desired.phase, "reason": desired.reason, "message": desired.message}
        self.status = status
        write_status(self.store, self.name, status)
        return status

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"serve-{self.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # a controller loop reports and keeps reconciling
                self.status = {**self.status, "message": f"reconcile error: {type(exc).__name__}: {exc}"}
                write_status(self.store, self.name, self.status)
            self._stop.wait(TICK_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.fleet.shutdown()
        if self.status.get("phase") in (Phase.RUNNING, Phase.PENDING):  # Failed or Waiting stay visible
            self.status = {**self.status, "phase": Phase.SUSPENDED, "reason": RUNNER_STOPPED,
                           "message": "local runner stopped (tanuki local apply serves it again)", "replicas": 0}
        write_status(self.store, self.name, self.status)


def as_status(fleet: FleetStatus) -> dict[str, Any]:
    """The local fleet's state as a ModelServer status (the phases the operator reports)."""
    if fleet.failed:
        phase, reason = Phase.FAILED, "ReplicaFailing"
    elif fleet.serving:
        phase, reason = Phase.RUNNING, "Serving"
    else:
        phase, reason = Phase.PENDING, "ReplicasStarting"
    status: dict[str, Any] = {"phase": phase, "reason": reason, "message": fleet.message, "replicas": fleet.replicas,
                              "rollout": fleet.rollout.model_dump(mode="json", exclude_none=True)}
    if fleet.serving and fleet.url:
        status["outputs"] = {"url": fleet.url, "model": fleet.model}
        if fleet.rollout.stable is not None:  # what the cluster's ModelServer reports too
            status["outputs"]["checkpoint"] = fleet.rollout.stable.model
    return status
