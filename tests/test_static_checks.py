"""The layers, lint and types the project keeps (pyproject.toml), checked as tests so CI runs them,
and docs/architecture.md kept in step with the packages and kinds it describes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tanuki_operator.stages import STAGES

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGES = ("tanuki_common", "tanuki_operator", "tanuki_pipelines", "tanuki_serving")


def run(*command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / d) for d in ("operator", "pipelines", "serving"))}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_import_contracts_are_kept() -> None:
    result = run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    kept = re.findall(r"^(.*) KEPT$", result.stdout, flags=re.MULTILINE)
    assert len(kept) >= 5, result.stdout  # layers, two kinds of "nothing heavy", the operator's image, no cycles


def test_ruff_finds_nothing() -> None:
    result = run(str(BIN / "ruff"), "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


@pytest.mark.slow  # about a minute: mypy reads torch's and transformers' annotations
def test_mypy_finds_nothing(tmp_path: Path) -> None:
    result = run(sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache"), timeout=900)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def test_the_architecture_page_names_every_package_and_kind_and_the_readme_links_it() -> None:
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [name for name in (*PACKAGES, *STAGES) if name not in page]
    assert not missing, f"docs/architecture.md does not mention {missing}"
    assert "docs/architecture.md" in (REPO / "README.md").read_text(encoding="utf-8")
    for package in PACKAGES:
        assert package in (REPO / "pyproject.toml").read_text(encoding="utf-8")
