"""Virtual environments of their own for tools that cannot be installed beside this project's
packages (checkov, lm-evaluation-harness: both pin a python-dateutil < 3 that the Kubernetes
client rejects).

Each is installed once into ``~/.cache/tanuki/<name>/`` (or under ``$XDG_CACHE_HOME``), built in a
temporary sibling directory and renamed into place, so an interrupted install is never used.
With ``inherit`` the environment also sees this interpreter's packages (torch, transformers) after
its own, through a ``.pth`` file, so only what differs is installed; the cache key then includes
that site directory.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path


def _cache(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tanuki" / name


@functools.cache
def side_python(name: str, requirements: tuple[str, ...], inherit: bool = False) -> Path:
    """The interpreter of the environment ``name`` holding ``requirements`` (``python -m`` style: a
    renamed venv's scripts would point at its old path, its interpreter does not)."""
    site = sysconfig.get_paths()["purelib"]
    if inherit:
        name = f"{name}-{hashlib.sha256(site.encode()).hexdigest()[:10]}"
    target = _cache(name)
    python = target / "bin" / "python"
    if (target / ".complete").is_file():
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
        if inherit:
            own = subprocess.run([str(staging / "bin" / "python"), "-c",
                                  "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
            # addsitedir (not a bare path) so the inherited site's own .pth files (editable installs) apply too
            (Path(own) / "zz_inherited_site.pth").write_text(f"import site; site.addsitedir({site!r})\n")
        subprocess.run([str(staging / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *requirements], check=True, timeout=900)
        (staging / ".complete").write_text("\n".join(requirements))
        if target.exists():  # a damaged earlier attempt
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return python
