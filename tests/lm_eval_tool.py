"""lm-evaluation-harness for the tests, in a side environment (``side_env``) that sees this
project's packages after its own: it pins python-dateutil < 3, which the Kubernetes client of the
operator extra rejects. The requirement is the ``harness`` extra's, read from pyproject.toml."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from side_env import side_python

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def harness_requirements() -> tuple[str, ...]:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    return tuple(extras["harness"])


def lm_eval_python() -> Path:
    requirements = harness_requirements()
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:8]
    return side_python(f"lm-eval-{key}", requirements, inherit=True)
