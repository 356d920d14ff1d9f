"""Offline schema checks: built-in kinds with kubernetes-validate, our CRs with jsonschema."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.30.0"
# custom resources of other projects that we render but whose schemas we do not ship
FOREIGN_KINDS = {("ray.io/v1", "RayJob"), ("keda.sh/v1alpha1", "ScaledObject"),
                 ("monitoring.coreos.com/v1", "ServiceMonitor")}


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def example_resources() -> list[dict[str, Any]]:
    """Every custom resource in examples/*.yaml."""
    return [doc for path in sorted(EXAMPLES_DIR.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def without_curation(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource reading the raw debug corpus (``corpus/<source>.jsonl``) where the example binds a
    source to debug-curate's shards: a first stage that starts at once, which the reconciler and
    runner tests drive on its own."""
    import copy

    bindings = resource.get("spec", {}).get("sourcesFrom") or []
    curated = {binding["source"] for binding in bindings if binding["from"]["kind"] == "CurateJob"}
    if not curated:
        return resource
    changed = copy.deepcopy(resource)
    spec = changed["spec"]
    spec["sourcesFrom"] = [binding for binding in bindings if binding["from"]["kind"] != "CurateJob"]
    if not spec["sourcesFrom"]:
        del spec["sourcesFrom"]
    recipe = spec["recipe"]
    lists = [recipe.get("sources"), recipe.get("data", {}).get("sources"),
             (recipe.get("tokenizer", {}).get("train") or {}).get("sources")]
    for sources in [found for found in lists if found]:
        for source in sources:
            if source["name"] in curated and "path" not in source:
                source["path"] = f"corpus/{source['name']}.jsonl"
    return changed


def runnable_examples() -> list[dict[str, Any]]:
    """``example_resources`` with ``without_curation`` applied to each."""
    return [without_curation(resource) for resource in example_resources()]


def validate_builtin(manifest: dict[str, Any]) -> None:
    """Raise if a built-in manifest violates the Kubernetes schema (unknown fields included)."""
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def _json_schema(node: Any) -> Any:
    """OpenAPI v3 (``nullable``) → JSON Schema (``type: [T, "null"]``)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "type" in node:
            node["type"] = [node["type"], "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(bound) is True:
            node[bound] = node.pop(plain)
    return node


@cache
def _crd_validator(kind: str) -> jsonschema.Draft202012Validator:
    from tanuki_operator.crds import crd
    from tanuki_operator.stages import STAGES as KINDS

    schema = copy.deepcopy(crd(KINDS[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    return jsonschema.Draft202012Validator(_json_schema(schema))


def validate_custom_resource(resource: dict[str, Any]) -> None:
    """Raise if a tanuki custom resource violates its CRD's openAPIV3Schema."""
    _crd_validator(resource["kind"]).validate(resource)
