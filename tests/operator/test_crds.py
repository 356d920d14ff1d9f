"""The CRDs: generated from the models, committed in the chart, structural, explainable."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from k8s_schemas import example_resources, validate_builtin, validate_custom_resource
from tanuki_operator.crds import all_crds, render_yaml
from tanuki_operator.stages import STAGES as KINDS

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "charts" / "tanuki" / "crds"


def test_committed_crds_match_the_models() -> None:
    generated = all_crds()
    committed = {path.name for path in CRD_DIR.glob("*.yaml")}
    assert committed == set(generated), "run `tanuki crds`"
    for name, document in generated.items():
        assert (CRD_DIR / name).read_text() == render_yaml(document), f"{name} drifted: run `tanuki crds`"


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_crd_is_a_valid_kubernetes_object(name: str) -> None:
    validate_builtin(all_crds()[name])


def walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schema_is_structural_and_explained(kind: str) -> None:
    version = all_crds()[f"{KINDS[kind].crd_name}.yaml"]["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for path, node in walk(schema):
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path}: no type"
        assert not {"$ref", "anyOf", "oneOf", "allOf", "prefixItems", "const"} & set(node), path
        assert not ("properties" in node and "additionalProperties" in node), path
        if path.startswith(".spec.") and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path}: no description for kubectl explain"
    assert version["subresources"]["status"] == {}
    columns = version["additionalPrinterColumns"]
    extra = [c["name"] for c in KINDS[kind].columns] or ["Progress"]
    expected = (["Phase", "Ready", "Stable", "Canary", "Canary%", "URL", "Age"] if kind == "ModelServer"
                else ["Phase", *extra, "Age"])
    assert [c["name"] for c in columns] == expected
    for column in columns:  # every column points at a field the schema declares, of the column's type
        node = version["schema"]["openAPIV3Schema"]
        for part in column["jsonPath"].strip(".").split("."):
            if part == "creationTimestamp" or "properties" not in node:  # metadata / free-form outputs map
                node = {"type": column["type"]}
                break
            node = node["properties"][part]
        if column["type"] in ("integer", "string"):
            assert node["type"] == column["type"], column


def test_names_categories_and_scale() -> None:
    crds = {doc["spec"]["names"]["kind"]: doc for doc in all_crds().values()}
    assert set(crds) == {"CurateJob", "TokenizeJob", "PretrainJob", "UpcycleJob", "SynthJob", "SFTJob", "DPOJob", "QuantizeJob",
                         "ModelServer", "EvalJob", "Arena"}
    for document in crds.values():
        assert document["spec"]["group"] == "llm.tanuki.dev"
        assert document["spec"]["names"]["categories"] == ["tanuki"]
        assert document["spec"]["names"]["shortNames"]
    assert crds["ModelServer"]["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"


@pytest.mark.parametrize("resource", example_resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_examples_validate_against_the_crds(resource: dict[str, Any]) -> None:
    validate_custom_resource(resource)


def test_crd_schema_rejects_a_wrong_type() -> None:
    import jsonschema

    resource = next(r for r in example_resources() if r["kind"] == "PretrainJob")
    broken = {**resource, "spec": {**resource["spec"], "nodes": "eight"}}
    with pytest.raises(jsonschema.ValidationError):
        validate_custom_resource(broken)


def _schema(kind: str) -> dict[str, Any]:
    return all_crds()[f"{KINDS[kind].crd_name}.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("kind", [kind for kind, stage in sorted(KINDS.items()) if stage.workload.batch])
def test_batch_specs_are_immutable_once_the_job_exists_by_cel(kind: str) -> None:
    from cel_rules import violations

    resource = copy.deepcopy(next(r for r in example_resources() if r["kind"] == kind))
    schema = _schema(kind)
    edited = copy.deepcopy(resource)
    edited["spec"]["resources"] = {"cpu": "7"}
    edited["spec"]["image"] = "registry.example/other:1"
    assert violations(schema, edited, resource) == []  # no Job yet: anything may change
    running = {**resource, "status": {"phase": "Running", "runGeneration": 1}}
    assert violations(schema, {**running, "metadata": {"name": "x"}}, running) == []  # unchanged is fine
    refused = violations(schema, {**edited, "status": running["status"]}, running)
    assert {v.field for v in refused} == {"spec.resources", "spec.image"}
    assert all(v.reason == "FieldValueForbidden" and "cannot change" in v.message for v in refused)
    suspended = copy.deepcopy(running)
    suspended["spec"]["suspend"] = True
    assert violations(schema, suspended, running) == []  # suspend stays mutable
    if "recipe" in resource["spec"]:
        recipe = copy.deepcopy(running)
        recipe["spec"]["recipe"]["changed_by_test"] = 1
        assert [v.field for v in violations(schema, recipe, running)] == ["spec.recipe"]


def test_model_server_is_mutable_in_every_field() -> None:
    assert "x-kubernetes-validations" not in _schema("ModelServer")


LINEAGE_CASES = [
    ("SFTJob", "dataset", "PretrainJob", "dialogues"),
    ("SFTJob", "model", "SynthJob", "checkpoint"),
    ("DPOJob", "prompts", "SFTJob", "dataset"),
    ("ModelServer", "initialModel", "EvalJob", "checkpoint"),
    ("QuantizeJob", "calibration", "UpcycleJob", "dataset"),
]


@pytest.mark.parametrize(("kind", "field", "upstream", "output"), LINEAGE_CASES)
def test_the_api_server_refuses_a_from_whose_kind_cannot_publish_what_the_field_reads(
        kind: str, field: str, upstream: str, output: str) -> None:
    from cel_rules import violations

    resource = copy.deepcopy(next(r for r in example_resources() if r["kind"] == kind))
    schema = _schema(kind)
    assert violations(schema, resource, None) == []
    resource["spec"][field] = {"from": {"kind": upstream, "name": "upstream"}}
    refused = violations(schema, resource, None)
    assert [(v.field, v.reason) for v in refused] == [(f"spec.{field}.from.kind", "FieldValueNotSupported")]
    assert output in refused[0].message
    resource["spec"][field] = {"path": "anything/on/the/volume"}
    assert violations(schema, resource, None) == []


def test_every_example_passes_the_lineage_rules() -> None:
    from cel_rules import violations

    for resource in example_resources():
        assert violations(_schema(resource["kind"]), resource, None) == [], resource["metadata"]["name"]
