"""Checkpoint directory layout and atomic publishing.

    checkpoints/
      step_00000010/          complete: HF export (config.json, *.safetensors, tokenizer files),
        deepspeed/            DeepSpeed state for resume,
        trainer_state.json    step, sampler counters, last loss
      .tmp-step_00000020/     being written; never read, removed on the next start
      latest                  name of the newest complete checkpoint (replaced atomically, last)

A checkpoint is written under ``.tmp-*`` and published with ``tanuki_pipelines.publish`` (fsynced,
renamed, parent fsynced): a directory named ``step_*`` is complete by construction, and ``latest``
only ever names one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tanuki_pipelines.publish import publish_dir, remove_stale, write_durable

LATEST_FILE = "latest"
STEP_PREFIX = "step_"
TMP_PREFIX = ".tmp-"
DEEPSPEED_DIR = "deepspeed"
DEEPSPEED_TAG = "state"
TRAINER_STATE_FILE = "trainer_state.json"


def step_name(step: int) -> str:
    return f"{STEP_PREFIX}{step:08d}"


def staging_dir(root: Path, step: int) -> Path:
    return root / f"{TMP_PREFIX}{step_name(step)}"


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not root.is_dir():
        return []
    found = [path for path in root.iterdir() if path.is_dir() and path.name.startswith(STEP_PREFIX)]
    return sorted(found, key=lambda path: path.name)


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint ``latest`` names; if that is gone, the newest complete one."""
    pointer = root / LATEST_FILE
    if pointer.is_file():
        named = root / pointer.read_text().strip()
        if named.is_dir() and named.name.startswith(STEP_PREFIX):
            return named
    complete = complete_checkpoints(root)
    return complete[-1] if complete else None


def remove_stale_staging(root: Path) -> list[Path]:
    """Delete half-written checkpoints (and copies being replaced) left by a crash; returns what was removed."""
    return remove_stale(root)


def write_text_atomic(path: Path, text: str) -> None:
    write_durable(path, text)


def publish(staged: Path, root: Path, step: int, keep_last: int) -> Path:
    """Make ``staged`` the checkpoint of ``step``: fsync, rename, move ``latest``, prune old ones.
    (A rerun of the same step after a crash between rename and ``latest`` replaces it.)"""
    final = publish_dir(staged, root / step_name(step))
    write_text_atomic(root / LATEST_FILE, final.name + "\n")
    for old in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final
