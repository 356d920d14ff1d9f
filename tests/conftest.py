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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--e2e", action="store_true", default=False,
                     help="run tests/e2e against the real cluster in $KUBECONFIG")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--e2e"):
        return
    skip = pytest.mark.skip(reason="needs a real cluster: pytest --e2e with KUBECONFIG set")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)
