"""What a stage needs before it starts work that the API can show: the Secret keys its pods mount.

A stage whose Secret or key is missing would start, run its upstreams' hours of work first, and
then fail to create its pod. The reconciler checks before it waits for upstreams or creates
anything, and the resource waits with reason ``SecretMissing`` naming the field, the Secret and
the key (a Secret may be created later: it is looked at again). Pure over a lookup, so the
cluster (the Secret's keys through the API) and the local runner (the files
``WORKDIR/secrets/<name>/<key>``) answer the same question.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

from tanuki_operator.api.common import JobSpec, SecretKeyRef, StageSpec
from tanuki_operator.api.modelserver import ModelServerSpec

SECRET_MISSING = "SecretMissing"
SecretKeys = Callable[[str], set[str] | None]
"""A Secret's name → its keys (None when there is no such Secret)."""


def _references(value: Any, path: str) -> Iterator[tuple[str, SecretKeyRef]]:
    """(field path, reference) of every Secret reference under ``value``."""
    if isinstance(value, SecretKeyRef):
        yield path, value
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            yield from _references(getattr(value, name), f"{path}.{field.alias or name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _references(item, f"{path}[{index}]")


def mounted_secrets(model: StageSpec) -> list[tuple[str, SecretKeyRef]]:
    """(field path, reference) of each Secret key the stage's pods mount."""
    if isinstance(model, ModelServerSpec):
        mounted = [model.auth.apiKey] if model.auth.apiKey is not None else []
    elif isinstance(model, JobSpec):
        mounted = list(model.secrets().values())
    else:
        mounted = []
    paths = {id(ref): path for path, ref in _references(model, "spec")}
    return [(paths.get(id(ref), "spec"), ref) for ref in mounted]


def missing_secrets(model: StageSpec, keys_of: SecretKeys) -> list[str]:
    """``spec.auth.apiKey: Secret tanuki-api-key has no key api-key`` for each mounted key missing."""
    problems = []
    for path, ref in mounted_secrets(model):
        keys = keys_of(ref.name)
        if keys is None:
            problems.append(f"{path}: no Secret {ref.name} (it needs the key {ref.key})")
        elif ref.key not in keys:
            problems.append(f"{path}: Secret {ref.name} has no key {ref.key}")
    return problems
