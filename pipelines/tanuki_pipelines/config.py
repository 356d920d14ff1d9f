"""Shared configuration machinery for every stage's recipe.

A recipe is a YAML file validated by a pydantic model. Rules:
- unknown keys are errors (``extra="forbid"``), so typos never pass silently;
- relative paths written in a recipe file are resolved against the recipe's directory (as
  docker-compose and kustomize do), so shipped recipes can name the data that ships beside them;
- ``--set a.b=value`` overrides are applied after that, and their relative paths resolve against
  the current directory, as any command-line path does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo

from tanuki_common.errors import BadInputError


class ConfigModel(BaseModel):
    """Base of every recipe model: unknown keys rejected, field docstrings become descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_default=True)


def _resolve_against_base(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir") if info.context else None
    if value.is_absolute() or base is None:
        return value
    return (Path(base) / value).resolve()


InputPath = Annotated[Path, AfterValidator(_resolve_against_base)]
"""A path read by a stage; relative values resolve against the recipe file's directory."""


class DataSource(ConfigModel):
    """One corpus: files of JSONL objects (plain, ``.gz`` or ``.zst``), parquet or plain text."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """Short name used by mixing weights and metrics (e.g. ``ja``, ``en``, ``synth``)."""
    path: InputPath | None = None
    """A file, a directory (every ``.jsonl``/``.json``/``.parquet``/``.txt`` file below it, also
    ``.gz``/``.zst`` compressed) or a glob (``shards/*.jsonl.zst``); read in sorted path order.
    Left unset in a custom resource whose operator binds it to an upstream job's dataset."""
    format: Literal["auto", "jsonl", "parquet", "text"] = "auto"
    """``auto`` reads each file by its suffix: ``.jsonl``/``.json`` (optionally ``.gz``/``.zst``) as
    JSONL, ``.parquet`` as parquet, anything else as plain text (documents separated by blank lines)."""
    text_field: str = "text"
    """Key (JSONL) or column (parquet) holding the document text."""
    on_bad_record: Literal["error", "skip"] | None = None
    """A record that is not JSON or lacks a string ``text_field``: ``error`` stops naming file:line,
    ``skip`` counts and reports it. Empty: the stage's default (``error``; synth skips)."""
    weight: float = Field(default=1.0, ge=0)
    """Mixing weight when no phases are given (normalised over all sources)."""


M = TypeVar("M", bound=BaseModel)


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem, each naming the dotted field path."""
    lines = [f"{source}: invalid recipe"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {field}: {item['msg']}")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.0.c=value`` → (["a", "b", "0", "c"], parsed YAML value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise BadInputError(f"--set {text!r}: expected KEY=VALUE, e.g. train.steps=100")
    return key.split("."), yaml.safe_load(raw) if raw else ""


def apply_override(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``value`` at ``keys`` in a nested dict/list tree, creating dicts as needed."""
    node: Any = tree
    for depth, key in enumerate(keys[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, key, keys[: depth + 1])]
        else:
            node = node.setdefault(key, {})
    last = keys[-1]
    if isinstance(node, list):
        node[_list_index(node, last, keys)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise BadInputError(f"--set {'.'.join(keys)}: {'.'.join(keys[:-1])} is not a mapping")


def _list_index(node: list, key: str, path: list[str]) -> int:
    if not key.isdigit() or int(key) >= len(node):
        raise BadInputError(f"--set {'.'.join(path)}: no list item {key!r} (list has {len(node)})")
    return int(key)


def load_recipe(model: type[M], path: Path, overrides: list[str] | None = None) -> M:
    """Read, validate and override a recipe; every failure is a BadInputError naming the field."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"recipe file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise BadInputError(f"{path}: a recipe must be a YAML mapping, got {type(raw).__name__}")
    config = validate_recipe(model, raw, base_dir=path.resolve().parent, source=str(path))
    if overrides:
        tree = config.model_dump(mode="json", exclude_unset=True)
        for text in overrides:
            apply_override(tree, *parse_override(text))
        config = validate_recipe(model, tree, base_dir=Path.cwd(), source=f"{path} with --set")
    return config


def validate_recipe(model: type[M], raw: dict[str, Any], base_dir: Path, source: str) -> M:
    try:
        return model.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise BadInputError(format_validation_error(exc, source)) from None


def dump_recipe(config: BaseModel, path: Path) -> None:
    """Write the fully resolved recipe (absolute paths, defaults filled) for workers and audit."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
