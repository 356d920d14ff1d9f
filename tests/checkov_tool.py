"""checkov (Bridgecrew's policy scanner) for the security tests, in a virtual environment of its own.

checkov pins older cachetools, networkx, packaging and python-dateutil than this project's
environment has, so it cannot be installed beside it. It is installed once per version into
``~/.cache/tanuki/checkov-<version>/`` (or under ``$XDG_CACHE_HOME``), built in a temporary
sibling directory and renamed into place, so an interrupted install is never used.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "3.3.30"
ACCEPTED = {"CKV_K8S_43": "images are referenced by tag, not digest: the chart and the operator take "
                          "whatever registry and tag a platform pins; digests belong in its values",
            "CKV_K8S_15": "imagePullPolicy stays the Kubernetes default (IfNotPresent for tagged images): "
                          "Always would re-pull multi-GB training and vLLM images on every pod start"}
"""The checks the project accepts failing, with the reason."""


def _cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tanuki" / f"checkov-{VERSION}"


@functools.cache
def checkov_python() -> Path:
    """The interpreter of checkov's environment (``python -m`` style: a renamed venv's scripts would
    point at its old path, its interpreter does not)."""
    target = _cache()
    python = target / "bin" / "python"
    if (target / ".complete").is_file():
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
        subprocess.run([str(staging / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"checkov=={VERSION}"], check=True, timeout=900)
        (staging / ".complete").write_text(VERSION)
        if target.exists():  # a damaged earlier attempt
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return python


RUN = "import sys, warnings; from checkov.main import Checkov; warnings.simplefilter('ignore'); sys.exit(Checkov().run())"


def failed_checks(manifests: Path) -> list[dict]:
    """checkov's failed Kubernetes checks on a (multi-document) YAML file, the accepted ones skipped."""
    result = subprocess.run([str(checkov_python()), "-c", RUN, "-f", str(manifests), "--framework", "kubernetes",
                             "--skip-download", "--quiet", "-o", "json", "--skip-check", ",".join(ACCEPTED)],
                            capture_output=True, text=True, timeout=600)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed to run: {result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    return [check for item in reports for check in (item.get("results") or {}).get("failed_checks") or []]
