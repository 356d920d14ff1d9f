"""Shared fixtures: paths of the shipped recipes and corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "pipelines" / "recipes"
DEBUG_CORPUS = RECIPES / "debug" / "corpus"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def debug_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped debug tokenizer recipe trained on the shipped corpus."""
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.recipes import shipped_recipe
    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import build_tokenizer

    config = load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer"))
    out = tmp_path_factory.mktemp("debug-tokenizer") / "tokenizer"
    outputs = build_tokenizer(config, out)
    assert outputs["tokenizer"] == str(out)
    return out


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, debug_tokenizer_dir: Path) -> dict[str, Path]:
    """Debug checkpoints ``a``, ``b`` (different weights) and ``broken`` (see serving_fixtures)."""
    from serving_fixtures import build_checkpoints

    return build_checkpoints(tmp_path_factory.mktemp("checkpoints"), debug_tokenizer_dir)


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


@pytest.fixture(scope="session")
def judge_model(debug_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A debug model with a 2,048-token context (judge prompts hold whole conversations)."""
    import torch

    from tanuki_pipelines.pretrain.config import ModelConfig
    from tanuki_pipelines.pretrain.model import build_model
    from tanuki_pipelines.tokenizer.train import copy_tokenizer_files

    root = tmp_path_factory.mktemp("judge")
    torch.manual_seed(3)
    build_model(ModelConfig(preset="debug", max_position_embeddings=2048), dtype=torch.float32).save_pretrained(
        root / "model")
    copy_tokenizer_files(debug_tokenizer_dir, root / "model")
    return root / "model"


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """One throwaway PostgreSQL server (Debian's package) for the whole run."""
    from postgres_server import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """An empty database of its own on that server."""
    from postgres_server import fresh_database

    return fresh_database(postgres_server_url)
