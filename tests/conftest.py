"""Shared fixtures: paths of the shipped recipes and corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "pipelines" / "recipes"
DEBUG_CORPUS = RECIPES / "debug" / "corpus"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
