"""Publishing outputs durably: a directory (or file) appears under its final name complete or not at all.

Every stage writes what it produces into a staging directory beside the final one
(``.tmp-<name>``), then ``publish_dir`` fsyncs every file and directory in it, renames it into
place and fsyncs the parent; a file goes the same way through ``write_durable``. After a power
loss or a node crash an output directory either does not exist or is complete, and a stage's
``outputs.json`` (written last, see ``tanuki_pipelines.outputs``) only names durable outputs.

    with staging(out_dir) as staged:          # .tmp-<name>, emptied first
        write files into staged
    # here: fsynced, renamed to out_dir, parent fsynced

``fault_point`` marks the steps of publishing; a test sets ``$TANUKI_FAULT_KILL_AT`` to one of
their names to SIGKILL the process exactly there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"
FAULT_ENV = "TANUKI_FAULT_KILL_AT"


def fault_point(name: str) -> None:
    """Test hook: SIGKILL this process here when ``$TANUKI_FAULT_KILL_AT`` names this point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Every file below ``root``, then every directory (deepest first), then ``root`` itself."""
    directories = []
    for current, _, files in os.walk(root):
        for name in files:
            path = Path(current) / name
            if not path.is_symlink():
                fsync_file(path)
        directories.append(Path(current))
    for directory in reversed(directories):
        fsync_dir(directory)


def staging_path(final: Path) -> Path:
    return final.with_name(f"{TMP_PREFIX}{final.name}")


def publish_dir(staged: Path, final: Path, label: str | None = None) -> Path:
    """Make the complete ``staged`` directory ``final``: fsync it all, move any previous ``final``
    aside, rename, fsync the parent, then delete the previous one."""
    label = label or final.name
    fsync_tree(staged)
    fault_point(f"{label}:before-rename")
    previous = final.with_name(f"{OLD_PREFIX}{final.name}")
    if final.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.rename(final, previous)
    os.rename(staged, final)
    fsync_dir(final.parent)
    fault_point(f"{label}:after-rename")
    shutil.rmtree(previous, ignore_errors=True)
    return final


@contextlib.contextmanager
def staging(final: Path, label: str | None = None) -> Iterator[Path]:
    """A fresh ``.tmp-<name>`` beside ``final`` to write into; published as ``final`` when the
    block ends without an exception (left behind otherwise, removed by the next attempt)."""
    final = final.resolve()
    staged = staging_path(final)
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    yield staged
    publish_dir(staged, final, label)


def write_durable(path: Path, data: str | bytes) -> Path:
    """Write a file under a temporary name, fsync it, rename it into place, fsync the directory."""
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    with open(tmp, "wb") as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def publish_file(staged: Path, final: Path) -> Path:
    """A file some library wrote under ``staged`` (e.g. a plot) becomes ``final``, durably."""
    fsync_file(staged)
    os.replace(staged, final)
    fsync_dir(final.parent)
    return final


def make_durable(path: Path) -> None:
    """An output written in place (e.g. an appended log): its data and its directory entry on disk."""
    fsync_file(path)
    fsync_dir(path.parent)


def remove_stale(root: Path) -> list[Path]:
    """Delete what an interrupted publish left in ``root`` (staging and previous copies)."""
    if not root.is_dir():
        return []
    stale = [path for path in root.iterdir() if path.name.startswith((TMP_PREFIX, OLD_PREFIX))]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return stale
