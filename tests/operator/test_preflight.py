"""Preflight: a stage whose mounted Secret key is missing waits with ``SecretMissing`` naming the field,
the Secret and the key, before it waits for upstreams or creates anything; once the Secret is there
it goes on. The same check answers from the API on a cluster and from the files locally."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from fake_kube import FakeKube

from k8s_schemas import runnable_examples
from tanuki_operator.api import API_VERSION
from tanuki_operator.embedded.store import ObjectStore
from tanuki_operator.handlers.reconcile import reconcile, secret_keys
from tanuki_operator.preflight import missing_secrets
from tanuki_operator.render import Settings
from tanuki_operator.validation import validate_spec

EXAMPLES = {r["metadata"]["name"]: r for r in runnable_examples()}


def spec_of(name: str, **changes: Any) -> Any:
    resource = copy.deepcopy(EXAMPLES[name])
    resource["spec"].update(changes)
    model, errors = validate_spec(resource["kind"], resource["spec"])
    assert model is not None, errors
    return model


@pytest.mark.parametrize(("name", "changes", "secrets", "expected"), [
    ("debug-chat", {}, {}, ["spec.auth.apiKey: no Secret tanuki-api-key (it needs the key api-key)"]),
    ("debug-chat", {}, {"tanuki-api-key": {"other"}}, ["spec.auth.apiKey: Secret tanuki-api-key has no key api-key"]),
    ("debug-chat", {}, {"tanuki-api-key": {"api-key"}}, []),
    ("debug-chat", {"auth": {"required": False}}, {}, []),
    ("debug-dpo", {}, {}, ["spec.judge.apiKey: no Secret tanuki-api-key (it needs the key api-key)"]),
    ("debug-eval", {}, {"tanuki-api-key": set()},
     [f"spec.{field}.apiKey: Secret tanuki-api-key has no key api-key" for field in ("targets[0]", "targets[1]", "judge")]),
    ("debug-base", {}, {}, []),
])
def test_each_mounted_secret_key_that_is_missing_is_named_by_its_field(
        name: str, changes: dict[str, Any], secrets: dict[str, set[str]], expected: list[str]) -> None:
    assert missing_secrets(spec_of(name, **changes), secrets.get) == expected


def test_dpo_without_generation_mounts_no_judge_key() -> None:
    model = spec_of("debug-dpo")
    model.recipe.generate = False
    assert missing_secrets(model, {}.get) == []


def test_a_stage_waits_for_its_secret_before_its_upstreams_and_goes_on_once_it_exists() -> None:
    kube = FakeKube()
    resource = copy.deepcopy(EXAMPLES["debug-dpo"])
    resource["metadata"]["namespace"] = "ml"
    kube.put(resource)
    key = (API_VERSION, "DPOJob", "ml", "debug-dpo")

    outcome = reconcile(kube, Settings(), "DPOJob", copy.deepcopy(kube.objects[key]))
    assert (outcome.status["phase"], outcome.status["conditions"][1]["reason"]) == ("Waiting", "SecretMissing")
    assert outcome.status["message"] == "spec.judge.apiKey: no Secret tanuki-api-key (it needs the key api-key)"
    assert outcome.requeue_after is None  # the controller's resync looks again (Secrets are not watched)
    assert ("batch/v1", "Job", "ml", "debug-dpo") not in kube.objects

    kube.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tanuki-api-key", "namespace": "ml"},
              "data": {"api-key": "c2VjcmV0"}})
    kube.patch_status(*key, outcome.status)
    outcome = reconcile(kube, Settings(), "DPOJob", copy.deepcopy(kube.objects[key]))
    # past the Secret: now it is its upstreams it waits for (none exists in this test)
    assert outcome.status["conditions"][1]["reason"] == "UpstreamUnavailable"
    assert "SFTJob/debug-sft" in outcome.status["message"]


def test_the_local_store_reads_secrets_from_files_and_never_keeps_them(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects.json", secrets_dir=tmp_path / "secrets")
    assert secret_keys(store, "local", "tanuki-api-key") is None
    (tmp_path / "secrets" / "tanuki-api-key").mkdir(parents=True)
    (tmp_path / "secrets" / "tanuki-api-key" / "api-key").write_text("s3cret")
    assert secret_keys(store, "local", "tanuki-api-key") == {"api-key"}
    store.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "local"}})
    assert "s3cret" not in (tmp_path / "objects.json").read_text() and "tanuki-api-key" not in store.all().__repr__()
