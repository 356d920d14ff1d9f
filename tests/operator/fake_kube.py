"""An in-memory stand-in for ``tanuki_operator.k8s.Kube`` (the fake-client test tier).

Same method surface; 409 on duplicate names; server-side apply and field managers as the API
server does them (``ssa.py``, shared with the emulator); a resourceVersion bumped on every real
change; optional crash injection: the N-th API call raises ``Crash``, to simulate the operator
dying mid-reconciliation.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import ssa

from tanuki_operator.k8s import ApiError

OPERATOR = "tanuki-operator"
WRITES = ("create", "apply", "patch", "status", "delete")


class Crash(Exception):
    pass


class FakeKube:
    def __init__(self, crash_at_call: int | None = None) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.crash_at_call = crash_at_call
        self.uid = 0
        self.logs = {}
        self.metrics = {}
        self._rv = itertools.count(1)

    def _tick(self, verb: str, kind: str, name: str) -> None:
        self.calls.append((verb, kind, name))
        if self.crash_at_call is not None and len(self.calls) == self.crash_at_call:
            raise Crash(f"crash at call {self.crash_at_call}: {verb} {kind}/{name}")

    def writes(self, since: int = 0) -> list[tuple[str, str, str]]:
        """The write calls made since call number ``since``."""
        return [call for call in self.calls[since:] if call[0] in WRITES]

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return obj

    def put(self, manifest: dict[str, Any], manager: str = "kubectl") -> dict[str, Any]:
        """Test setup: store an object as-is (like a person's kubectl, or another controller)."""
        meta = manifest["metadata"]
        self.uid += 1
        meta.setdefault("uid", f"uid-{self.uid}")
        meta.setdefault("namespace", "ml")
        meta.setdefault("generation", 1)
        key = (manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        ssa.record_update(self.objects.get(key), manifest, manager)
        self.objects[key] = self._stamp(manifest)
        return manifest

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._tick("get", kind, name)
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        self._tick("list", kind, "")
        return [copy.deepcopy(obj) for (v, k, ns, _), obj in sorted(self.objects.items())
                if (v, k, ns) == (api_version, kind, namespace)
                and all(obj["metadata"].get("labels", {}).get(key) == value for key, value in selector.items())]

    logs: dict[tuple[str, str], str]

    def pod_log(self, namespace: str, name: str, tail_lines: int = 50) -> str:
        self._tick("log", "Pod", name)
        return "\n".join(self.logs.get((namespace, name), "").splitlines()[-tail_lines:])

    metrics: dict[tuple[str, str], str]
    """(namespace, pod) → the Prometheus text its /metrics answers through the pods proxy."""

    def pod_proxy_get(self, namespace: str, name: str, port: int, path: str) -> str | None:
        self._tick("proxy", "Pod", name)
        return self.metrics.get((namespace, name)) if path == "/metrics" else None

    def _new(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.uid += 1
        stored = copy.deepcopy(manifest)
        stored["metadata"].update(uid=f"uid-{self.uid}", generation=1)
        return stored

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        meta = manifest["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta = {**meta, "name": f"{meta['generateName']}{self.uid + 1:05d}"}
            manifest = {**manifest, "metadata": meta}
        self._tick("create", manifest["kind"], meta["name"])
        key = (manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        if key in self.objects:
            return None
        stored = self._new(manifest)
        ssa.record_update(None, stored, OPERATOR)
        self.objects[key] = self._stamp(stored)
        return copy.deepcopy(stored)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        self._tick("apply", manifest["kind"], meta["name"])
        key = (manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        live = self.objects.get(key)
        result = ssa.apply(live, manifest, OPERATOR, force=True)
        if live is None:
            result["metadata"].update(uid=self._new(manifest)["metadata"]["uid"], generation=1)
        elif result != live:
            spec_changed = {k: v for k, v in result.items() if k not in ("metadata", "status")} != \
                {k: v for k, v in live.items() if k not in ("metadata", "status")}
            result["metadata"]["generation"] = live["metadata"].get("generation", 1) + int(spec_changed)
        if result != live:
            self.objects[key] = self._stamp(result)
        return copy.deepcopy(self.objects[key])

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any]) -> Any:
        self._tick("patch", kind, name)
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            raise ApiError(404, "NotFound")
        before = copy.deepcopy(self.objects[key])
        merge(self.objects[key], body)
        if self.objects[key] != before:
            ssa.record_update(before, self.objects[key], OPERATOR)
            self._stamp(self.objects[key])
        return copy.deepcopy(self.objects[key])

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> Any:
        self._tick("status", kind, name)
        key = (api_version, kind, namespace, name)
        if key not in self.objects:
            raise ApiError(404, "NotFound")
        merge(self.objects[key], {"status": status})
        return copy.deepcopy(self.objects[key])

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._tick("delete", kind, name)
        self.objects.pop((api_version, kind, namespace, name), None)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for (_, k, _, _), obj in self.objects.items() if k == kind]


def merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """RFC 7386 JSON merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
