"""Checkpoint directory layout and atomic publishing.

    checkpoints/
      step_00000010/          complete: HF export (config.json, *.safetensors, tokenizer files),
        deepspeed/            DeepSpeed state for resume,
        trainer_state.json    step, sampler counters, last loss
      .tmp-step_00000020/     being written; never read, removed on the next start
      latest                  name of the newest complete checkpoint (replaced atomically, last)

A checkpoint is written under ``.tmp-*``, fsynced, then renamed: a directory named ``step_*``
is complete by construction, and ``latest`` only ever names one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
    """Delete half-written checkpoints left by a crash; returns what was removed."""
    if not root.is_dir():
        return []
    stale = [path for path in root.iterdir() if path.name.startswith(TMP_PREFIX)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return stale


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for path in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staged: Path, root: Path, step: int, keep_last: int) -> Path:
    """Make ``staged`` the checkpoint of ``step``: fsync, rename, move ``latest``, prune old ones."""
    _fsync_tree(staged)
    final = root / step_name(step)
    if final.exists():  # a rerun of the same step after a crash between rename and `latest`
        shutil.rmtree(final)
    os.rename(staged, final)
    _fsync_dir(root)
    write_text_atomic(root / LATEST_FILE, final.name + "\n")
    for old in complete_checkpoints(root)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final
