"""Server-side apply and field ownership, as kube-apiserver does them, without an API server.

The embedded object store (``tanuki local``) and both test API fakes (the in-memory ``FakeKube``
and the kmock emulator) write objects through these functions, so the operator's applies behave
the same on a laptop and in every test tier. What is modelled:

- ``metadata.managedFields``: one entry per (manager, operation[, subresource]) with the fields it
  owns, in the FieldsV1 encoding (``{"f:spec": {"f:replicas": {}}}``).
- Apply (``application/apply-patch+yaml``): creates a missing object; the applied fields become the
  manager's; fields it applied before and no longer sends are removed unless another manager owns
  them too; a field another manager owns with a different value is a 409 conflict unless forced,
  and forcing takes it over.
- Other writes (create, update, merge and JSON patches, /status): fields whose value changed move
  to the writing manager (``?fieldManager=``, or the client's user agent).

Simplification, stated: lists are atomic (owned and replaced whole). The apiserver merges
associative lists such as ``containers`` or ``ownerReferences`` by key; the operator owns every
list it renders whole, so for its children the result is the same.
"""

from __future__ import annotations

import datetime
import pickle
from typing import Any, TypeVar

Path = tuple[str, ...]


JsonT = TypeVar("JsonT")


def copy_json(obj: JsonT) -> JsonT:
    # objects are plain JSON data: a pickle round trip copies them several times faster than deepcopy
    copied: JsonT = pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))
    return copied

UNTRACKED = {("apiVersion",), ("kind",), ("status",)}
UNTRACKED_METADATA = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                      "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "generateName", "selfLink"}


class Conflict(Exception):
    """Apply without force touched fields another manager owns with another value."""

    def __init__(self, conflicts: list[tuple[str, Path]]) -> None:
        self.conflicts = conflicts
        super().__init__("Apply failed with {} conflict(s): {}".format(len(conflicts), "; ".join(
            f'conflict with "{manager}": .{".".join(path)}' for manager, path in conflicts)))


def leaves(obj: Any, prefix: Path = ()) -> set[Path]:
    """The field paths of an object: every map key recursively, lists and scalars as leaves."""
    if isinstance(obj, dict) and (obj or not prefix):
        found: set[Path] = set()
        for key, value in obj.items():
            path = (*prefix, key)
            if path in UNTRACKED or (prefix == ("metadata",) and key in UNTRACKED_METADATA):
                continue
            found |= leaves(value, path)
        return found
    return {prefix}


def get_path(obj: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


_MISSING = object()


def _remove(obj: dict[str, Any], path: Path) -> None:
    parents = [obj]
    for key in path[:-1]:
        child = parents[-1].get(key)
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):  # maps emptied by the removal go too
        if parents[depth] == {}:
            parents[depth - 1].pop(path[depth - 1], None)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict) and value:
            _merge(target[key], value)
        else:
            target[key] = copy_json(value)


def encode(paths: set[Path]) -> dict[str, Any]:
    """FieldsV1: nested ``f:<name>`` maps, ``{}`` for an owned leaf."""
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def decode(fields: dict[str, Any], prefix: Path = ()) -> set[Path]:
    found: set[Path] = set()
    for key, child in fields.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        found |= decode(child, path) if child else {path}
    return found


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = obj.setdefault("metadata", {}).setdefault("managedFields", [])
    return entries


def owned(obj: dict[str, Any]) -> dict[tuple[str, str, str], set[Path]]:
    """(manager, operation, subresource) → owned paths."""
    return {(e["manager"], e["operation"], e.get("subresource", "")): decode(e.get("fieldsV1") or {})
            for e in (obj.get("metadata") or {}).get("managedFields") or []}


def _store_owned(obj: dict[str, Any], table: dict[tuple[str, str, str], set[Path]], api_version: str) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = {(e["manager"], e["operation"], e.get("subresource", "")): e for e in _entries(obj)}
    entries = []
    for (manager, operation, subresource), paths in table.items():
        if not paths:
            continue
        entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "fieldsType": "FieldsV1",
                 "fieldsV1": encode(paths), "time": stamp}
        if subresource:
            entry["subresource"] = subresource
        old = previous.get((manager, operation, subresource))
        if old is not None and old.get("fieldsV1") == entry["fieldsV1"]:
            entry["time"] = old.get("time", stamp)
        entries.append(entry)
    obj["metadata"]["managedFields"] = entries


def changed_paths(old: dict[str, Any] | None, new: dict[str, Any]) -> set[Path]:
    """Leaves of ``new`` whose value differs from ``old`` (or are new)."""
    return {path for path in leaves(new) if old is None or get_path(old, path) != get_path(new, path)}


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, subresource: str = "") -> None:
    """After a non-apply write: changed fields belong to ``manager``; removed fields to nobody."""
    table = owned(old) if old is not None else {}
    present = leaves(new)
    changed = changed_paths(old, new)
    for key in table:
        table[key] = {p for p in table[key] if p in present and p not in changed}
    mine = (manager, "Update", subresource)
    table[mine] = (table.get(mine, set()) | changed) & present
    _store_owned(new, table, new.get("apiVersion", ""))


def apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` (raises ``Conflict``)."""
    applied = copy_json(applied)
    applied.get("metadata", {}).pop("managedFields", None)
    mine = (manager, "Apply", "")
    new_paths = leaves(applied)
    if live is None:
        obj = copy_json(applied)
        _store_owned(obj, {mine: new_paths}, obj.get("apiVersion", ""))
        return obj
    obj = copy_json(live)
    table = owned(obj)
    conflicts = [(other[0], path) for other, paths in table.items() if other != mine
                 for path in paths & new_paths if get_path(obj, path) != get_path(applied, path)]
    if conflicts and not force:
        raise Conflict(sorted(conflicts))
    for other in table:
        if other != mine:
            table[other] -= {path for _, path in conflicts}
    others = set().union(*(paths for key, paths in table.items() if key != mine)) if table else set()
    for path in table.get(mine, set()) - new_paths - others:
        _remove(obj, path)
    _merge(obj, {k: v for k, v in applied.items() if k != "status"})
    table[mine] = new_paths
    _store_owned(obj, table, obj.get("apiVersion", ""))
    return obj
