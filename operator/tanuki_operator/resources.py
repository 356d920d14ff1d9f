"""The resources of a chain file as the local API server holds them: read from the file, placed in the
local namespace with their PVC under the workdir, and the workdir's store (``tanuki local``,
``tanuki check``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tanuki_operator.api import API_VERSION
from tanuki_operator.embedded.store import ObjectStore
from tanuki_operator.stages import STAGES

NAMESPACE = "local"
"""The namespace of everything ``tanuki local`` applies."""


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
    """The spec with its PVC mounted at WORKDIR/<claimName> instead of the pod's mountPath (a spec
    without storage stays without: an Arena needs none)."""
    if not spec.get("storage"):
        return spec
    storage = dict(spec.get("storage") or {})
    claim = str(storage.get("claimName", "default"))
    storage["mountPath"] = str((workdir / claim).resolve())
    return {**spec, "storage": storage}


def store_of(workdir: Path) -> ObjectStore:
    """The workdir's objects (custom resources and their children), as the last runner left them."""
    return ObjectStore(workdir / ".tanuki" / "objects.json", secrets_dir=workdir / "secrets")


def manifest_of(resource: dict[str, Any], workdir: Path | None) -> dict[str, Any]:
    """The resource as the local API server stores it: in ``NAMESPACE``, its PVC under the workdir
    (None: mounted where the pods mount it, as a cluster has it)."""
    labels = (resource.get("metadata") or {}).get("labels") or {}
    return {"apiVersion": API_VERSION, "kind": resource["kind"],
            "metadata": {"name": resource["metadata"]["name"], "namespace": NAMESPACE,
                         **({"labels": labels} if labels else {})},
            "spec": localised(resource.get("spec") or {}, workdir) if workdir is not None else resource.get("spec") or {}}


def unknown(resource: dict[str, Any]) -> str | None:
    """Why the local API server has no such resource type (as ``kubectl apply`` says it), or None."""
    if resource.get("apiVersion") != API_VERSION or resource["kind"] not in STAGES:
        return f'no matches for kind "{resource["kind"]}" in version "{resource.get("apiVersion")}"'
    return None
