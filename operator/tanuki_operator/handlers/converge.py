"""Bring each child to its rendered state (server-side apply), keep Jobs as created, prune leftovers.

Convergence is level-based: every reconcile renders the children from the spec and compares. A
child is applied when it is missing, when what the operator would apply changed (the hash of the
applied configuration, kept in an annotation, differs), or when someone edited one of the
operator's fields by hand (the rendered fields are no longer all present with their values).
Server-side apply then sets exactly those fields and removes the ones the operator applied before
and no longer renders; fields other managers set are left alone.

A Job's (or RayJob's) pod template cannot change, so the workload child is created once; after
that only the fields Kubernetes lets change in place are synced (``suspend``, unless Kueue owns it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from typing import Any

from tanuki_operator.k8s import ApiError, KubeApi
from tanuki_operator.render.common import Owner, owner_selector

APPLIED = "llm.tanuki.dev/applied"
"""Annotation: hash of the configuration the operator last applied to this child."""
OPTIONAL_APIS = {("keda.sh/v1alpha1", "ScaledObject"), ("monitoring.coreos.com/v1", "ServiceMonitor"),
                 ("ray.io/v1", "RayJob")}
"""Custom resources of other projects: when their API is not installed, the child is skipped."""


def applied_hash(manifest: dict[str, Any]) -> str:
    payload = json.dumps(manifest, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def stamped(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with the hash of itself in its annotations."""
    copy: dict[str, Any] = json.loads(json.dumps(manifest))
    digest = applied_hash(manifest)
    copy["metadata"].setdefault("annotations", {})[APPLIED] = digest
    return copy


def covers(desired: Any, live: Any) -> bool:
    """Every field of ``desired`` is in ``live`` with the same value (``live`` may hold more: server
    defaults, other managers' fields). Lists compare item by item; numbers and their string form
    are the same value (the API returns quantities as strings)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(key in live and covers(value, live[key]) for key, value in desired.items())
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(map(covers, desired, live))
    if desired == live:
        return True
    return isinstance(desired, (int, float)) and not isinstance(desired, bool) and str(desired) == str(live)


def owned_by(child: dict[str, Any], owner: Owner) -> bool:
    return any(ref.get("uid") == owner.uid for ref in (child.get("metadata") or {}).get("ownerReferences") or [])


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    if live is None:
        return True
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return annotations.get(APPLIED) != desired["metadata"]["annotations"][APPLIED] or not covers(desired, live)


def converge(kube: KubeApi, manifests: list[dict[str, Any]], fresh: bool = False) -> list[str]:
    """Apply each manifest whose child differs; returns ``Kind/name`` of those applied. ``fresh``:
    the owner was never reconciled, so its children are applied without reading them first (an
    apply is idempotent: one left by a reconcile that crashed is simply applied again)."""
    applied = []
    for manifest in manifests:
        desired = stamped(manifest)
        meta = desired["metadata"]
        try:
            live = None if fresh else kube.get(desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"])
            if needs_apply(desired, live):
                kube.apply(desired)
                applied.append(f"{desired['kind']}/{meta['name']}")
        except ApiError as exc:
            if exc.status == 404 and (desired["apiVersion"], desired["kind"]) in OPTIONAL_APIS:
                continue  # that API is not installed: the resource works without this child
            raise
    return applied


def ensure_created(kube: KubeApi, manifest: dict[str, Any], owner: Owner) -> dict[str, Any]:
    """The workload child as it exists: created from ``manifest`` when missing (a 409 from a retried
    create after a crash means it exists), adopted when it lacks our ownerReference."""
    meta = manifest["metadata"]
    live = kube.get(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
    if live is None:
        created = kube.create(manifest)
        if created is not None:
            return created
        live = kube.get(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]) or manifest
    if not owned_by(live, owner):
        references = (live.get("metadata") or {}).get("ownerReferences") or []
        live = kube.patch(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"],
                          {"metadata": {"ownerReferences": [*references, owner.reference()],
                                        "labels": meta["labels"]}}) or live
    return live


def prune(kube: KubeApi, owner: Owner, kinds: tuple[tuple[str, str], ...], keep: list[dict[str, Any]],
          skip: Collection[tuple[str, str]] = frozenset()) -> list[str]:
    """Delete children of ``kinds`` this resource owns that are not in ``keep`` (e.g. an HPA after
    switching to KEDA, the ServiceMonitor after turning monitoring off)."""
    wanted = {(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in keep}
    deleted = []
    for api_version, kind in kinds:
        if (api_version, kind) in skip:
            continue
        try:
            children = kube.list(api_version, kind, owner.namespace, owner_selector(owner))
        except ApiError as exc:
            if exc.status == 404:  # that API is not installed
                continue
            raise
        for child in children:
            name = child["metadata"]["name"]
            if (api_version, kind, name) not in wanted and owned_by(child, owner):
                kube.delete(api_version, kind, owner.namespace, name)
                deleted.append(f"{kind}/{name}")
    return deleted
