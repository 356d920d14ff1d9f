"""checkov (Bridgecrew's policy scanner) for the security tests, in a virtual environment of its
own (``side_env``): checkov pins older cachetools, networkx, packaging and python-dateutil than
this project's environment has, so it cannot be installed beside it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from side_env import side_python

VERSION = "3.3.30"
ACCEPTED = {"CKV_K8S_43": "images are referenced by tag, not digest: the chart and the operator take "
                          "whatever registry and tag a platform pins; digests belong in its values",
            "CKV_K8S_15": "imagePullPolicy stays the Kubernetes default (IfNotPresent for tagged images): "
                          "Always would re-pull multi-GB training and vLLM images on every pod start"}
"""The checks the project accepts failing, with the reason."""


def checkov_python() -> Path:
    return side_python(f"checkov-{VERSION}", (f"checkov=={VERSION}",))


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
