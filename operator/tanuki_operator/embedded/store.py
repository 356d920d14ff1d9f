"""The objects of an API server without the server: what ``tanuki local`` runs the operator against.

``ObjectStore`` implements the operator's API seam (``k8s.KubeApi``: get, list, create, server-side
apply, merge patch, status patch, delete, pod logs, the pods proxy) with kube-apiserver's object
semantics: uids, ``generation`` bumped by spec changes only, a ``resourceVersion`` bumped by every
change, field ownership and server-side apply (``ssa``), 409 on a duplicate create, 404 on a patch
of nothing, and the garbage collector's cascade (deleting an object deletes what it owns). Every
change is delivered to the watchers (``watch``), as a watch stream would deliver it.

With a ``path`` the objects persist as one JSON file, written atomically after each change and
guarded by a file lock, so a later ``tanuki local`` process (``get``, a rerun) sees them; the
process that runs a chain holds them in memory and is the only writer while it runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tanuki_operator.embedded import ssa
from tanuki_operator.k8s import FIELD_MANAGER, ApiError, cluster_service_url

ObjectKey = tuple[str, str, str, str]
"""(apiVersion, kind, namespace, name)."""
Watcher = Callable[[str, dict[str, Any]], None]
"""Called with (ADDED | MODIFIED | DELETED, a copy of the object) after each change."""


def key_of(manifest: dict[str, Any]) -> ObjectKey:
    meta = manifest["metadata"]
    return manifest["apiVersion"], manifest["kind"], meta.get("namespace") or "default", meta["name"]


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge_patch(target[key], value)
        else:
            target[key] = ssa.copy_json(value)


def patch_between(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns ``old`` into ``new`` (nested keys ``new`` lacks become null)."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            if (nested := patch_between(before, value)):
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    return patch


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


def matches(obj: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in selector.items())


class ObjectStore:
    """API objects held in memory, optionally persisted to ``path``; safe to call from many threads."""

    def __init__(self, path: Path | None = None, secrets_dir: Path | None = None) -> None:
        self.path = path
        self.secrets_dir = secrets_dir
        """Where Secrets are files (``<dir>/<name>/<key>``, as a mounted Secret volume looks): a Secret
        not stored is read from there, never copied into the store's file."""
        self.objects: dict[ObjectKey, dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str | Path] = {}
        """(namespace, pod) → what its container printed, or the file the kubelet writes it to."""
        self.pod_ports: dict[tuple[str, str, int], int] = {}
        """(namespace, pod, containerPort) → the port on 127.0.0.1 where the kubelet runs it."""
        self.service_ports: dict[tuple[str, str, int], int] = {}
        """(namespace, Service, port) → the port on 127.0.0.1 where the local kube-proxy serves it."""
        self._watchers: list[Watcher] = []
        self._lock = threading.RLock()
        self._versions = itertools.count(1)
        if path is not None:
            self._load()

    # ---- persistence ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> None:
        assert self.path is not None
        with self._file_lock():
            try:
                stored = json.loads(self.path.read_text())
            except FileNotFoundError:
                return
            except json.JSONDecodeError as exc:
                raise ApiError(500, f"{self.path}: not the store's JSON ({exc}); move it away to start afresh") from None
        self.objects = {key_of(obj): obj for obj in stored.get("objects") or []}
        newest = max((int(obj["metadata"].get("resourceVersion") or 0) for obj in self.objects.values()), default=0)
        self._versions = itertools.count(newest + 1)

    def reload(self) -> None:
        """Read the file again (another process wrote it)."""
        with self._lock:
            if self.path is not None:
                self._load()

    def _save(self) -> None:
        if self.path is None:
            return
        with self._file_lock():
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps({"objects": list(self.objects.values())}, ensure_ascii=False))
            os.replace(temporary, self.path)

    # ---- watch ----------------------------------------------------------------------------------

    def watch(self, watcher: Watcher) -> None:
        """Deliver every later change to ``watcher`` (in the writing thread: keep it short)."""
        with self._lock:
            self._watchers.append(watcher)

    def _changed(self, event: str, obj: dict[str, Any]) -> None:
        self._save()
        for watcher in list(self._watchers):
            watcher(event, ssa.copy_json(obj))

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))
        return obj

    def _new(self, manifest: dict[str, Any]) -> dict[str, Any]:
        stored = ssa.copy_json(manifest)
        meta = stored["metadata"]
        meta.setdefault("namespace", "default")
        meta.update(uid=str(uuid.uuid4()), generation=1,
                    creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return stored

    # ---- the API seam (k8s.KubeApi) -------------------------------------------------------------

    def all(self) -> list[dict[str, Any]]:
        """Every object (copies), for listings such as ``tanuki local get``."""
        with self._lock:
            return [ssa.copy_json(obj) for _, obj in sorted(self.objects.items())]

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self.objects.get((api_version, kind, namespace, name))
            if found is not None:
                return ssa.copy_json(found)
        if (api_version, kind) == ("v1", "Secret") and self.secrets_dir is not None:
            return self._secret_from_files(namespace, name)
        return None

    def _secret_from_files(self, namespace: str, name: str) -> dict[str, Any] | None:
        import base64

        directory = self.secrets_dir / name if self.secrets_dir is not None else None
        if directory is None or not directory.is_dir():
            return None
        data = {path.name: base64.b64encode(path.read_bytes()).decode() for path in sorted(directory.iterdir())
                if path.is_file()}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "type": "Opaque", "data": data}

    def of_kind(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Every object of one kind, in every namespace (copies of those only)."""
        with self._lock:
            return [ssa.copy_json(obj) for (v, k, _, _), obj in sorted(self.objects.items()) if (v, k) == (api_version, kind)]

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        with self._lock:
            return [ssa.copy_json(obj) for (v, k, ns, _), obj in sorted(self.objects.items())
                    if (v, k, ns) == (api_version, kind, namespace) and matches(obj, selector)]

    def pod_log(self, namespace: str, name: str, tail_lines: int = 50) -> str:
        with self._lock:
            source = self.logs.get((namespace, name), "")
        if isinstance(source, Path):
            try:
                source = source.read_text(errors="replace")
            except OSError:
                return ""
        return "\n".join(source.splitlines()[-tail_lines:])

    def pod_proxy_get(self, namespace: str, name: str, port: int, path: str) -> str | None:
        import httpx

        with self._lock:
            local = self.pod_ports.get((namespace, name, port))
        if local is None:
            return None
        try:
            response = httpx.get(f"http://127.0.0.1:{local}{path}", timeout=5.0)
        except httpx.HTTPError:
            return None
        return response.text if response.is_success else None

    def service_url(self, namespace: str, name: str, port: int) -> str:
        """The Service's local address while the node's proxy serves it, else its cluster DNS name."""
        with self._lock:
            local = self.service_ports.get((namespace, name, port))
        return cluster_service_url(namespace, name, port) if local is None else f"http://127.0.0.1:{local}"

    def create(self, manifest: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any] | None:
        """Create; None when an object of that name exists (``generateName`` picks a free name)."""
        with self._lock:
            meta = manifest["metadata"]
            if not meta.get("name") and meta.get("generateName"):
                manifest = {**manifest, "metadata": {**meta, "name": f"{meta['generateName']}{uuid.uuid4().hex[:5]}"}}
            key = key_of(manifest)
            if key in self.objects:
                return None
            stored = self._new(manifest)
            ssa.record_update(None, stored, manager)
            self.objects[key] = self._stamp(stored)
            self._changed("ADDED", stored)
            return ssa.copy_json(stored)

    def apply(self, manifest: dict[str, Any], manager: str = FIELD_MANAGER, force: bool = True) -> dict[str, Any]:
        """Server-side apply by ``manager``; ``generation`` counts changes of anything but metadata and status."""
        with self._lock:
            key = key_of(manifest)
            live = self.objects.get(key)
            try:
                result = ssa.apply(live, manifest, manager, force=force)
            except ssa.Conflict as exc:
                raise ApiError(409, str(exc)) from None
            if live is None:
                fresh = self._new(result)
                result["metadata"].update({k: fresh["metadata"][k] for k in ("uid", "generation", "creationTimestamp",
                                                                             "namespace")})
            elif result != live:
                result["metadata"]["generation"] = live["metadata"].get("generation", 1) + int(
                    _spec_of(result) != _spec_of(live))
            if result != live:
                self.objects[key] = self._stamp(result)
                self._changed("ADDED" if live is None else "MODIFIED", result)
                if (key[0], key[1]) == ("v1", "Secret"):
                    self._secret_to_files(result)
            return ssa.copy_json(self.objects[key])

    def _secret_to_files(self, secret: dict[str, Any]) -> None:
        """A Secret written through the API (an Arena's issued tokens) becomes the files local pods mount."""
        import base64

        if self.secrets_dir is None:
            return
        directory = self.secrets_dir / secret["metadata"]["name"]
        directory.mkdir(parents=True, exist_ok=True)
        for key, value in (secret.get("data") or {}).items():
            path = directory / key
            path.write_bytes(base64.b64decode(value))
            path.chmod(0o600)

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any],
              manager: str = FIELD_MANAGER) -> Any:
        """JSON merge patch of the object (its status too, when ``body`` has one: for writers that own it)."""
        return self._merge((api_version, kind, namespace, name), body, manager, subresource=False)

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any],
                     manager: str = FIELD_MANAGER) -> Any:
        """Merge ``status`` into the status subresource (never the spec, never ``generation``)."""
        return self._merge((api_version, kind, namespace, name), {"status": status}, manager, subresource=True)

    def _merge(self, key: ObjectKey, body: dict[str, Any], manager: str, subresource: bool) -> dict[str, Any]:
        with self._lock:
            if key not in self.objects:
                raise ApiError(404, f"{key[1]} {key[2]}/{key[3]} not found")
            live = self.objects[key]  # changed in place: holders of the stored dict (tests) see it
            before = ssa.copy_json(live)
            merge_patch(live, body)
            if live != before:
                if not subresource:
                    ssa.record_update(before, live, manager)
                    if _spec_of(live) != _spec_of(before):
                        live["metadata"]["generation"] = before["metadata"].get("generation", 1) + 1
                self._changed("MODIFIED", self._stamp(live))
            return ssa.copy_json(live)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete the object, then (as the garbage collector does) everything it owns."""
        with self._lock:
            gone = self.objects.pop((api_version, kind, namespace, name), None)
            if gone is None:
                return
            self._changed("DELETED", gone)
            uid = gone["metadata"].get("uid")
            owned = [obj for obj in list(self.objects.values())
                     if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])]
            for child in owned:
                self.delete(*key_of(child))
