"""The embedded object store: the API semantics ``tanuki local`` runs the operator on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tanuki_operator.embedded.store import ObjectStore, merge_patch, patch_between
from tanuki_operator.k8s import ApiError


def config_map(name: str, data: str, owner: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": "ml", "labels": {"app": "x"}}
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": owner["apiVersion"], "kind": owner["kind"],
                                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]}]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": data}}


def test_generation_counts_spec_changes_and_resource_version_every_change(tmp_path: Path) -> None:
    store = ObjectStore()
    created = store.apply(config_map("a", "1"), manager="kubectl")
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    same = store.apply(config_map("a", "1"), manager="kubectl")
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]  # no change, no write
    changed = store.apply(config_map("a", "2"), manager="kubectl")
    assert changed["metadata"]["generation"] == 2
    status = store.patch_status("v1", "ConfigMap", "ml", "a", {"phase": "Running"})
    assert status["metadata"]["generation"] == 2  # a status write is not a spec change
    assert int(status["metadata"]["resourceVersion"]) > int(changed["metadata"]["resourceVersion"])
    assert store.create(config_map("a", "3")) is None  # 409: exists
    with pytest.raises(ApiError) as missing:
        store.patch("v1", "ConfigMap", "ml", "nope", {"data": {"k": "x"}})
    assert missing.value.status == 404
    assert [obj["metadata"]["name"] for obj in store.list("v1", "ConfigMap", "ml", {"app": "x"})] == ["a"]
    assert store.list("v1", "ConfigMap", "ml", {"app": "y"}) == []


def test_apply_conflicts_with_another_managers_field_unless_forced() -> None:
    store = ObjectStore()
    store.apply(config_map("a", "1"), manager="kubectl")
    with pytest.raises(ApiError) as conflict:
        store.apply(config_map("a", "2"), manager="tanuki-operator", force=False)
    assert conflict.value.status == 409 and "kubectl" in str(conflict.value)
    assert store.apply(config_map("a", "2"), manager="tanuki-operator")["data"] == {"k": "2"}


def test_watchers_see_every_change_and_deletion_cascades_to_owned_objects() -> None:
    store = ObjectStore()
    events: list[tuple[str, str]] = []
    store.watch(lambda event, obj: events.append((event, obj["metadata"]["name"])))
    owner = store.apply(config_map("owner", "1"))
    store.apply(config_map("child", "1", owner))
    store.apply(config_map("grandchild", "1", store.get("v1", "ConfigMap", "ml", "child")))
    store.patch_status("v1", "ConfigMap", "ml", "owner", {"phase": "Running"})
    store.delete("v1", "ConfigMap", "ml", "owner")
    assert events == [("ADDED", "owner"), ("ADDED", "child"), ("ADDED", "grandchild"), ("MODIFIED", "owner"),
                      ("DELETED", "owner"), ("DELETED", "child"), ("DELETED", "grandchild")]
    assert store.all() == []


def test_a_file_backed_store_is_seen_by_a_later_process(tmp_path: Path) -> None:
    path = tmp_path / ".tanuki" / "objects.json"
    first = ObjectStore(path)
    first.apply(config_map("a", "1"))
    version = first.patch_status("v1", "ConfigMap", "ml", "a", {"phase": "Succeeded"})["metadata"]["resourceVersion"]
    later = ObjectStore(path)
    found = later.get("v1", "ConfigMap", "ml", "a")
    assert found is not None and found["status"] == {"phase": "Succeeded"}
    later.apply(config_map("b", "1"))
    assert int(later.get("v1", "ConfigMap", "ml", "b")["metadata"]["resourceVersion"]) > int(version)
    first.reload()
    assert first.get("v1", "ConfigMap", "ml", "b") is not None
    path.write_text("{not json")
    with pytest.raises(ApiError, match="objects.json"):
        ObjectStore(path)


def test_pod_logs_come_from_the_kubelets_file(tmp_path: Path) -> None:
    store = ObjectStore()
    log = tmp_path / "pod.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    store.logs["ml", "p"] = log
    assert store.pod_log("ml", "p", tail_lines=2) == "line 98\nline 99"
    assert store.pod_log("ml", "absent") == ""
    assert store.pod_proxy_get("ml", "p", 8000, "/metrics") is None  # no port: nothing answers


def test_the_patch_between_two_statuses_removes_what_the_new_one_lacks_at_any_depth() -> None:
    old = {"phase": "Running", "rollout": {"stable": {"revision": "a"}, "canary": {"revision": "b"}}, "gone": 1}
    new = {"phase": "Running", "rollout": {"stable": {"revision": "b"}}, "replicas": 2}
    patch = patch_between(old, new)
    assert patch == {"gone": None, "rollout": {"stable": {"revision": "b"}, "canary": None}, "replicas": 2}
    merge_patch(old, patch)
    assert old == new
    emptied = {"rollout": {"stable": {"revision": "a"}}}
    merge_patch(emptied, patch_between(emptied, {"rollout": {}}))
    assert emptied == {"rollout": {}}
