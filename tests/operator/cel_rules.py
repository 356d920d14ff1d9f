"""CRD ``x-kubernetes-validations`` evaluated the way kube-apiserver does, with Google's CEL
(cel-expr-python, a binding of cel-cpp). Used by the emulator on writes and by the CRD tests.

Modelled: rules at any schema node whose path holds only object properties (the ones our CRDs
have: the resource root); transition rules (those naming ``oldSelf``) run on updates only;
null-valued fields count as absent; the first failing rule's ``message``/``fieldPath``/``reason``
make the 422. Not modelled: rules under arrays, cost budgets, the Kubernetes CEL libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from cel_expr_python import cel

_ENV = cel.NewEnv(variables={"self": cel.Type.DYN, "oldSelf": cel.Type.DYN})


@dataclass(frozen=True)
class Violation:
    field: str
    message: str
    reason: str


@cache
def _program(rule: str) -> Any:
    return _ENV.compile(rule)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _rules(schema: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    found = [(path, rule) for rule in schema.get("x-kubernetes-validations") or []]
    for name, child in (schema.get("properties") or {}).items():
        found += _rules(child, (*path, name))
    return found


def _at(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def rules_of(schema: dict[str, Any]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Every rule of a schema with the path of the node it sits on."""
    return _rules(schema)


def violations(schema: dict[str, Any] | list, new: dict[str, Any], old: dict[str, Any] | None) -> list[Violation]:
    """What the API server would refuse of writing ``new`` over ``old`` (None: a create).
    ``schema`` may be given as ``rules_of(schema)``, computed once."""
    rules = schema if isinstance(schema, list) else _rules(schema)
    if old is None:
        rules = [(path, rule) for path, rule in rules if "oldSelf" not in rule["rule"]]
    if not rules:
        return []
    new, old = _without_nulls(new), _without_nulls(old) if old is not None else None
    found = []
    for path, rule in rules:
        self_value = _at(new, path)
        transition = "oldSelf" in rule["rule"]
        old_value = _at(old, path) if old is not None else None
        if self_value is None or (transition and old_value is None):
            continue  # rules run where the value exists; transition rules only on updates
        result = _program(rule["rule"]).eval(data={"self": self_value, "oldSelf": old_value})
        if result.type() == cel.Type.ERROR or result.value() is not True:
            where = ".".join(path) + rule.get("fieldPath", "")
            found.append(Violation(where.lstrip("."), rule.get("message") or f"failed rule: {rule['rule']}",
                                   rule.get("reason", "FieldValueInvalid")))
    return found
