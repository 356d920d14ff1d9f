"""Spec → validated model, or a list of field errors (a terminal ValidationFailed).

Relative recipe paths resolve against ``spec.storage.mountPath`` (the PVC inside the pod), the way
the CLI resolves them against a recipe file's directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tanuki_operator.api.common import ArtifactSource, ObjectRef, StageSpec
from tanuki_operator.stages import STAGES


@dataclass(frozen=True)
class FieldError:
    field: str
    """Dotted path from the resource root, e.g. ``spec.recipe.train.steps``."""
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _mount_path(spec: Any) -> str:
    if isinstance(spec, dict) and isinstance(spec.get("storage"), dict):
        mount = spec["storage"].get("mountPath", "/data")
        if isinstance(mount, str) and mount.startswith("/"):
            return mount
    return "/data"


def validate_spec(kind: str, spec: Any) -> tuple[StageSpec | None, list[FieldError]]:
    """Validate ``spec`` of a resource of ``kind``; never raises for bad input."""
    if kind not in STAGES:
        return None, [FieldError("kind", f"unknown kind {kind!r}")]
    if not isinstance(spec, dict):
        return None, [FieldError("spec", f"must be an object, got {type(spec).__name__}")]
    try:
        model = STAGES[kind].spec.model_validate(spec, context={"base_dir": _mount_path(spec)})
    except ValidationError as exc:
        return None, [FieldError(_field(_without_tags(item["loc"], spec)), item["msg"]) for item in exc.errors()]
    except (TypeError, ValueError) as exc:  # a validator tripping over a value of the wrong shape
        return None, [FieldError("spec", str(exc))]
    errors = lineage_errors(model)
    return (None, errors) if errors else (model, [])


def lineage_errors(model: StageSpec) -> list[FieldError]:
    """Each ``from:`` naming a kind that does not publish the output the field reads: found when the
    spec is validated, not after the upstream ran."""
    errors = []
    for item in model.inputs().values():
        ref = item.source.from_ if isinstance(item.source, ArtifactSource) else item.source
        if not isinstance(ref, ObjectRef) or item.output in STAGES[ref.kind].outputs:
            continue
        publishers = [kind for kind, stage in STAGES.items() if item.output in stage.outputs]
        error = FieldError(f"{item.spec_field}.from.kind",
                           f"{ref.kind} publishes no {item.output} (it publishes "
                           f"{', '.join(sorted(STAGES[ref.kind].outputs))}); {item.output} comes from "
                           f"{' or '.join(publishers)}")
        if error not in errors:
            errors.append(error)
    return errors


def _without_tags(location: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """The location with the tags pydantic inserts for a discriminated union (a curation step's
    ``step``) left out: ``steps[1].language.languages[0]`` is ``steps[1].languages[0]`` in the spec."""
    kept: list[Any] = []
    node = data
    for part in location:
        if isinstance(node, dict) and isinstance(part, str) and part not in node and part in node.values():
            continue  # a tag: the node's discriminator value, not one of its keys
        kept.append(part)
        node = node[part] if isinstance(node, (dict, list)) and _has(node, part) else None
    return tuple(kept)


def _has(node: dict[str, Any] | list[Any], part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(part, int) and 0 <= part < len(node)


def _field(location: tuple[Any, ...]) -> str:
    parts = ["spec"]
    for part in location:
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


def summarize(errors: list[FieldError], limit: int = 5) -> str:
    shown = "; ".join(str(error) for error in errors[:limit])
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return shown + more
