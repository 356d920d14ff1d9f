"""The embedded ``ObjectStore`` as the fake-client test tier's API: every call recorded, and optional
crash injection (the N-th API call raises ``Crash``, to simulate the operator dying mid-reconcile).

The API semantics (409 on duplicate names, server-side apply and field managers, generation and
resourceVersion, the garbage collector's cascade) are the store's, the ones ``tanuki local`` runs on.
"""

from __future__ import annotations

from typing import Any

from tanuki_operator.embedded import ssa
from tanuki_operator.embedded.store import ObjectStore, key_of, merge_patch

OPERATOR = "tanuki-operator"
WRITES = ("create", "apply", "patch", "status", "delete")
merge = merge_patch


class Crash(Exception):
    pass


class FakeKube(ObjectStore):
    def __init__(self, crash_at_call: int | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, str]] = []
        self.crash_at_call = crash_at_call
        self.metrics: dict[tuple[str, str], str] = {}
        """(namespace, pod) → the Prometheus text its /metrics answers through the pods proxy."""
        self._uids = 0

    def _tick(self, verb: str, kind: str, name: str) -> None:
        self.calls.append((verb, kind, name))
        if self.crash_at_call is not None and len(self.calls) == self.crash_at_call:
            raise Crash(f"crash at call {self.crash_at_call}: {verb} {kind}/{name}")

    def writes(self, since: int = 0) -> list[tuple[str, str, str]]:
        """The write calls made since call number ``since``."""
        return [call for call in self.calls[since:] if call[0] in WRITES]

    def put(self, manifest: dict[str, Any], manager: str = "kubectl") -> dict[str, Any]:
        """Test setup: store an object as-is (like a person's kubectl, or another controller)."""
        meta = manifest["metadata"]
        self._uids += 1
        meta.setdefault("uid", f"uid-{self._uids}")
        meta.setdefault("namespace", "ml")
        meta.setdefault("generation", 1)
        ssa.record_update(self.objects.get(key_of(manifest)), manifest, manager)
        self.objects[key_of(manifest)] = self._stamp(manifest)
        return manifest

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._tick("get", kind, name)
        return super().get(api_version, kind, namespace, name)

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        self._tick("list", kind, "")
        return super().list(api_version, kind, namespace, selector)

    def pod_log(self, namespace: str, name: str, tail_lines: int = 50) -> str:
        self._tick("log", "Pod", name)
        return super().pod_log(namespace, name, tail_lines)

    def pod_proxy_get(self, namespace: str, name: str, port: int, path: str) -> str | None:
        self._tick("proxy", "Pod", name)
        return self.metrics.get((namespace, name)) if path == "/metrics" else None

    def create(self, manifest: dict[str, Any], manager: str = OPERATOR) -> dict[str, Any] | None:
        self._tick("create", manifest["kind"], manifest["metadata"].get("name") or manifest["metadata"]["generateName"])
        return super().create(manifest, manager)

    def apply(self, manifest: dict[str, Any], manager: str = OPERATOR, force: bool = True) -> dict[str, Any]:
        self._tick("apply", manifest["kind"], manifest["metadata"]["name"])
        return super().apply(manifest, manager, force)

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any],
              manager: str = OPERATOR) -> Any:
        self._tick("patch", kind, name)
        return super().patch(api_version, kind, namespace, name, body, manager)

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any],
                     manager: str = OPERATOR) -> Any:
        self._tick("status", kind, name)
        return super().patch_status(api_version, kind, namespace, name, status, manager)

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self._tick("delete", kind, name)
        super().delete(api_version, kind, namespace, name)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for (_, k, _, _), obj in self.objects.items() if k == kind]
