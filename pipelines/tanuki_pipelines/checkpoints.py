"""The check every stage that reads a model runs first: the path is an HF checkpoint directory.

A wrong path otherwise surfaces late and raw: vLLM and transformers take a path that is not a
directory for a Hugging Face repo id ("Repo id must use alphanumeric chars ..."), after seconds of
engine start-up. Here it is a ``BadInputError`` naming the field (exit 2, terminal for the pod)."""

from __future__ import annotations

from pathlib import Path

from tanuki_common.errors import BadInputError


def require_checkpoint(field: str, path: Path | None) -> Path:
    """``path`` when it is a directory holding ``config.json``; else an error naming ``field``."""
    if path is None:
        raise BadInputError(f"{field}: not set (an HF checkpoint directory is needed)")
    if not path.is_dir():
        raise BadInputError(f"{field}: no such directory: {path} (an HF checkpoint directory, with config.json)")
    if not (path / "config.json").is_file():
        raise BadInputError(f"{field}: {path} has no config.json (not an HF checkpoint directory)")
    return path
