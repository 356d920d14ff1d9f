"""pydantic models → CustomResourceDefinitions (pure).

JSON Schema from pydantic is turned into a Kubernetes *structural* OpenAPI v3 schema: ``$ref``s
inlined, ``X | None`` → ``nullable``, draft-2020 numeric bounds → OpenAPI 3.0 form, tuples →
fixed-length arrays, free-form maps → ``x-kubernetes-preserve-unknown-fields``. Defaults are not
copied into the CRD: the operator applies them from the same models, so there is one source;
the description says what the default is, for ``kubectl explain``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from pydantic import BaseModel

from tanuki_operator.api import GROUP, VERSION, Status
from tanuki_operator.api.common import READS_KEY
from tanuki_operator.stages import STAGES, Stage, Workload

DROPPED_KEYS = {"title", "default", "additionalProperties", "discriminator", "examples"}
KEPT_FORMATS = {"int32", "int64", "float", "double", "byte", "date", "date-time", "password"}


SERVING_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "integer", "jsonPath": ".status.replicas"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.rollout.stable.revision"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.rollout.canary.revision"},
    {"name": "Canary%", "type": "integer", "jsonPath": ".status.rollout.trafficShare.canary"},
    {"name": "URL", "type": "string", "jsonPath": ".status.outputs.url", "priority": 1},
]
"""`kubectl get modelserver`: what serves, what is rolling out and how much traffic it gets."""


def printer_columns(info: Stage) -> list[dict[str, Any]]:
    columns: list[dict[str, Any]] = [{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}]
    if info.workload is Workload.SERVER:
        columns += SERVING_COLUMNS
    elif info.columns:
        columns += list(info.columns)
    else:
        columns.append({"name": "Progress", "type": "string", "jsonPath": ".status.progress.summary"})
    return [*columns, {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]


IMMUTABLE_ONCE_RUNNING = ("recipe", "resources", "image")
"""Batch kinds: spec fields the API server itself refuses to change once the stage's Job exists
(``status.runGeneration`` set); the reconciler refuses every other change but spec.suspend too."""


def immutability_rules(info: Stage) -> list[dict[str, Any]]:
    """CEL transition rules on the resource root (they see spec and status together)."""
    if not info.workload.batch:
        return []
    rules = []
    for name in IMMUTABLE_ONCE_RUNNING:
        if name not in info.spec.model_fields:
            continue
        unchanged = (f"has(self.spec.{name}) == has(oldSelf.spec.{name}) && "
                     f"(!has(self.spec.{name}) || self.spec.{name} == oldSelf.spec.{name})")
        rules.append({
            "rule": f"!has(oldSelf.status) || !has(oldSelf.status.runGeneration) || ({unchanged})",
            "message": f"spec.{name} cannot change once the stage's Job exists (status.runGeneration); "
                       f"delete and re-create the {info.kind} to run a new one",
            "fieldPath": f".spec.{name}",
            "reason": "FieldValueForbidden",
        })
    return rules


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = copy.deepcopy(definitions[node["$ref"].rsplit("/", 1)[-1]])
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _inline_refs(merged, definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


def _describe_default(schema: dict[str, Any]) -> None:
    if "default" in schema and schema["default"] not in (None, [], {}):
        default = json.dumps(schema["default"], ensure_ascii=False)
        text = schema.get("description", "").rstrip()
        schema["description"] = f"{text} Default: {default}." if text else f"Default: {default}."


def to_structural(schema: dict[str, Any]) -> dict[str, Any]:
    """Convert one (ref-free) pydantic JSON schema node into a structural OpenAPI v3 node."""
    schema = dict(schema)
    _describe_default(schema)
    if "oneOf" in schema:  # a discriminated union (a curation step): as any other union
        schema["anyOf"] = schema.pop("oneOf")
        schema.pop("discriminator", None)
    any_of = schema.pop("anyOf", None)
    if any_of is not None:
        options = [option for option in any_of if option.get("type") != "null"]
        nullable = len(options) < len(any_of)
        if len(options) == 1:
            merged = {**to_structural(options[0]), **{k: v for k, v in schema.items() if k not in DROPPED_KEYS}}
            if "description" in schema:
                merged["description"] = schema["description"]
        else:  # a genuine union: let any value through, the operator validates it
            merged = {"x-kubernetes-preserve-unknown-fields": True,
                      **({"description": schema["description"]} if "description" in schema else {})}
        if nullable:
            merged["nullable"] = True
        return _clean(merged)
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    if "prefixItems" in schema:  # tuple[X, X] → fixed-length array of X
        items = schema.pop("prefixItems")
        schema.update({"type": "array", "items": to_structural(items[0]),
                       "minItems": len(items), "maxItems": len(items)})
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in schema and not isinstance(schema[bound], bool):
            schema[plain] = schema.pop(bound)
            schema[bound] = True
    if "properties" in schema:
        schema["type"] = "object"
        schema["properties"] = {name: to_structural(sub) for name, sub in schema["properties"].items()}
    elif schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            schema["additionalProperties"] = to_structural(extra)
            return _clean(schema, keep_additional=True)
        schema["x-kubernetes-preserve-unknown-fields"] = True
    elif "type" not in schema and "enum" not in schema:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in schema and isinstance(schema["items"], dict):
        schema["items"] = to_structural(schema["items"])
    if "enum" in schema and "type" not in schema:
        schema["type"] = _json_type(schema["enum"][0])
    return _clean(schema)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def lineage_rule(node: dict[str, Any], output: str) -> dict[str, Any]:
    """CEL on a field referencing an upstream (an ``ArtifactSource`` with ``from``, or an ``ObjectRef``):
    only a kind whose stage publishes ``output`` may be named."""
    kinds = [kind for kind, stage in STAGES.items() if output in stage.outputs]
    has_from = "from" in node.get("properties", {})
    return {
        "rule": f"{'!has(self.from) || self.from.kind' if has_from else 'self.kind'} in {json.dumps(kinds)}",
        "message": f"reads the upstream's {output}, published by {', '.join(kinds)} only",
        "fieldPath": ".from.kind" if has_from else ".kind",
        "reason": "FieldValueNotSupported",
    }


def _clean(schema: dict[str, Any], keep_additional: bool = False) -> dict[str, Any]:
    dropped = DROPPED_KEYS - ({"additionalProperties"} if keep_additional else set())
    cleaned = {key: value for key, value in schema.items() if key not in dropped}
    if READS_KEY in cleaned:
        cleaned["x-kubernetes-validations"] = [*cleaned.get("x-kubernetes-validations", []),
                                               lineage_rule(cleaned, cleaned.pop(READS_KEY))]
    if "format" in cleaned and cleaned["format"] not in KEPT_FORMATS:
        del cleaned["format"]
    if "required" in cleaned and not cleaned["required"]:
        del cleaned["required"]
    return cleaned


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return to_structural(_inline_refs(raw, raw.get("$defs", {})))


def crd(info: Stage) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    spec_schema = model_schema(info.spec)
    spec_schema["description"] = info.spec.__doc__.strip().splitlines()[0] if info.spec.__doc__ else ""
    status_schema = model_schema(Status)
    subresources: dict[str, Any] = {"status": {}}
    if info.scale:
        subresources["scale"] = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                                 "labelSelectorPath": ".status.selector"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name, "labels": {"app.kubernetes.io/part-of": "tanuki"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": ["tanuki"],
            },
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": subresources,
                "additionalPrinterColumns": printer_columns(info),
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": info.description,
                    **({"x-kubernetes-validations": rules} if (rules := immutability_rules(info)) else {}),
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": spec_schema,
                        "status": status_schema,
                    },
                }},
            }],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name → CRD, for every kind."""
    return {f"{info.crd_name}.yaml": crd(info) for info in STAGES.values()}


def render_yaml(document: dict[str, Any]) -> str:
    header = "# Generated by `tanuki crds` from the pydantic models in tanuki_operator.api: do not edit.\n"
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
