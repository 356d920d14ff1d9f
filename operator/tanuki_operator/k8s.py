"""The only module that talks to the Kubernetes API (through the official client's ApiClient).

Generic create / get / list / apply / patch / delete by apiVersion + kind, with paths from one
table, so the handlers need no per-kind client classes and tests can run against any API server.
Children are written with server-side apply under the operator's own field manager: fields other
managers set (a person's label, an autoscaler's count) stay theirs.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Service"): "services",
    ("v1", "Pod"): "pods",
    ("batch/v1", "Job"): "jobs",
    ("apps/v1", "Deployment"): "deployments",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("ray.io/v1", "RayJob"): "rayjobs",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitors",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("v1", "Event"): "events",
}
FIELD_MANAGER = "tanuki-operator"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500


def register_kinds(kinds: dict[tuple[str, str], str]) -> None:
    PLURALS.update(kinds)


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"


class KubeApi(Protocol):
    """What the handlers call: ``Kube``, or the read cache in front of it (``handlers.cache.CachedKube``)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]: ...

    def pod_log(self, namespace: str, name: str, tail_lines: int = 50) -> str: ...

    def pod_proxy_get(self, namespace: str, name: str, port: int, path: str) -> str | None: ...

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None: ...

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]: ...

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any]) -> Any: ...

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> Any: ...

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None: ...


class Kube:
    """A thin synchronous wrapper over ``kubernetes.client.ApiClient.call_api``."""

    def __init__(self, api_client: Any = None) -> None:
        if api_client is None:
            from kubernetes import client, config

            # the kubernetes package ships py.typed but leaves its config loaders unannotated
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
        self.api = api_client

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
              query: list[tuple[str, str]] | None = None, text: bool = False) -> Any:
        """The decoded JSON answer (None for an empty body), or the body as text with ``text``; its shape
        depends on the endpoint, so each caller declares it."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            method, url, headers, body, post = self.api.param_serialize(
                method=method, resource_path=path, query_params=query or [], header_params=headers,
                body=body, auth_settings=["BearerToken"])
            response = self.api.call_api(method, url, header_params=headers, body=body, post_params=post)
            data = response.read()
        except ApiException as exc:
            raise ApiError(exc.status or 0, str(exc.reason)) from None
        except (HTTPError, OSError) as exc:
            raise ApiError(0, f"connection: {exc}") from None
        if response.status >= 400:
            raise ApiError(response.status, f"{response.reason}: {data[:300]!r}")
        if text:
            return data.decode("utf-8", errors="replace") if data else ""
        return json.loads(data) if data else None

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] | None = self._call("GET", f"{collection_path(api_version, kind, namespace)}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items()))]
        result = self._call("GET", collection_path(api_version, kind, namespace), query=query)
        return list(result.get("items") or [])

    def pod_log(self, namespace: str, name: str, tail_lines: int = 50) -> str:
        """The last lines a pod's container printed ("" if it has not started)."""
        try:
            log: str = self._call("GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log",
                                  query=[("tailLines", str(tail_lines))], text=True)
        except ApiError as exc:
            if exc.status in (400, 404):  # container not started yet / pod gone
                return ""
            raise
        return log

    def pod_proxy_get(self, namespace: str, name: str, port: int, path: str) -> str | None:
        """GET a path of a pod's port through the API server's proxy (None when it does not answer)."""
        try:
            answer: str = self._call("GET", f"/api/v1/namespaces/{namespace}/pods/{name}:{port}/proxy{path}", text=True)
        except ApiError as exc:
            if exc.transient or exc.status in (400, 403, 404):
                return None
            raise
        return answer

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when an object of that name already exists (idempotent re-runs)."""
        path = collection_path(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["namespace"])
        try:
            created: dict[str, Any] | None = self._call("POST", path, body=manifest, query=[("fieldManager", FIELD_MANAGER)])
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise
        return created

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (creates the object when missing): the fields in ``manifest`` become the
        operator's; fields it applied before and no longer sends are removed; conflicts with other
        managers are forced (the operator owns what it renders)."""
        meta = manifest["metadata"]
        path = f"{collection_path(manifest['apiVersion'], manifest['kind'], meta['namespace'])}/{meta['name']}"
        applied: dict[str, Any] = self._call("PATCH", path, body=manifest, content_type=APPLY_PATCH,
                                             query=[("fieldManager", FIELD_MANAGER), ("force", "true")])
        return applied

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any]) -> Any:
        """JSON merge patch of the fields in ``body`` (null deletes)."""
        return self._call("PATCH", f"{collection_path(api_version, kind, namespace)}/{name}", body=body,
                          content_type=MERGE_PATCH, query=[("fieldManager", FIELD_MANAGER)])

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> Any:
        """Merge ``status`` into the object's status subresource."""
        return self._call("PATCH", f"{collection_path(api_version, kind, namespace)}/{name}/status",
                          body={"status": status}, content_type=MERGE_PATCH, query=[("fieldManager", FIELD_MANAGER)])

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            self._call("DELETE", f"{collection_path(api_version, kind, namespace)}/{name}",
                       body={"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status != 404:
                raise
