"""The only module that talks to the Kubernetes API (through the official client's ApiClient).

Generic create / get / list / apply / patch / delete by apiVersion + kind, each kind's resource
name found through the API server's discovery (the official client's ``DynamicClient``), so the
handlers need no per-kind client classes or plural table, and tests can run against any API server.
Children are written with server-side apply under the operator's own field manager: fields other
managers set (a person's label, an autoscaler's count) stay theirs.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Protocol

FIELD_MANAGER = "tanuki-operator"
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        """What the API server (or the local kubelet) said, without the status code."""

    @property
    def transient(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500


def api_prefix(api_version: str) -> str:
    """``/api/v1`` for the core group, ``/apis/<group>/<version>`` for the others."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def cluster_service_url(namespace: str, name: str, port: int) -> str:
    """Where clients in the cluster reach a Service's port: its DNS name."""
    return f"http://{name}.{namespace}.svc" + ("" if port == 80 else f":{port}")


class KubeApi(Protocol):
    """What the handlers call: ``Kube``, or the read cache in front of it (``handlers.cache.CachedKube``)."""

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]: ...

    def pod_log(self, namespace: str, name: str, tail_lines: int = 50) -> str: ...

    def pod_proxy_get(self, namespace: str, name: str, port: int, path: str) -> str | None: ...

    def service_url(self, namespace: str, name: str, port: int) -> str: ...

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
        self._discovery: Any = None
        self._plurals: dict[tuple[str, str], str] = {}
        self._discovery_lock = threading.Lock()

    def collection_path(self, api_version: str, kind: str, namespace: str) -> str:
        """The namespaced collection of a kind, its resource name from discovery (cached; a kind the
        server does not serve, such as a CRD not installed, is a 404 naming it)."""
        with self._discovery_lock:
            plural = self._plurals.get((api_version, kind))
            if plural is None:
                plural = self._plurals[api_version, kind] = self._discover(api_version, kind)
        return f"{api_prefix(api_version)}/namespaces/{namespace}/{plural}"

    def _discover(self, api_version: str, kind: str) -> str:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic import DynamicClient
        from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError
        from urllib3.exceptions import HTTPError

        try:
            if self._discovery is None:
                self._discovery = DynamicClient(self.api)  # type: ignore[no-untyped-call]  # unannotated in kubernetes
            name: str = self._discovery.resources.get(api_version=api_version, kind=kind).name
        except ResourceNotFoundError:
            raise ApiError(404, f"the API server serves no {kind} in {api_version} (is its CRD installed?)") from None
        except (ApiException, DynamicApiError) as exc:
            raise ApiError(getattr(exc, "status", 0) or 0, f"discovery: {exc}") from None
        except (HTTPError, OSError) as exc:
            raise ApiError(0, f"discovery: connection: {exc}") from None
        return name

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
            obj: dict[str, Any] | None = self._call("GET", f"{self.collection_path(api_version, kind, namespace)}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return obj

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in selector.items()))]
        result = self._call("GET", self.collection_path(api_version, kind, namespace), query=query)
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

    def service_url(self, namespace: str, name: str, port: int) -> str:
        return cluster_service_url(namespace, name, port)

    def create(self, manifest: dict[str, Any]) -> dict[str, Any] | None:
        """Create; None when an object of that name already exists (idempotent re-runs)."""
        path = self.collection_path(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["namespace"])
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
        path = f"{self.collection_path(manifest['apiVersion'], manifest['kind'], meta['namespace'])}/{meta['name']}"
        applied: dict[str, Any] = self._call("PATCH", path, body=manifest, content_type=APPLY_PATCH,
                                             query=[("fieldManager", FIELD_MANAGER), ("force", "true")])
        return applied

    def patch(self, api_version: str, kind: str, namespace: str, name: str, body: dict[str, Any]) -> Any:
        """JSON merge patch of the fields in ``body`` (null deletes)."""
        return self._call("PATCH", f"{self.collection_path(api_version, kind, namespace)}/{name}", body=body,
                          content_type=MERGE_PATCH, query=[("fieldManager", FIELD_MANAGER)])

    def patch_status(self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]) -> Any:
        """Merge ``status`` into the object's status subresource."""
        return self._call("PATCH", f"{self.collection_path(api_version, kind, namespace)}/{name}/status",
                          body={"status": status}, content_type=MERGE_PATCH, query=[("fieldManager", FIELD_MANAGER)])

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        try:
            self._call("DELETE", f"{self.collection_path(api_version, kind, namespace)}/{name}",
                       body={"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status != 404:
                raise
