"""Fixtures for the pipeline tests: one debug tokenizer per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tanuki_pipelines.config import load_recipe
from tanuki_pipelines.recipes import shipped_recipe
from tanuki_pipelines.tokenizer.config import TokenizerConfig
from tanuki_pipelines.tokenizer.train import build_tokenizer


@pytest.fixture(scope="session")
def debug_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped debug tokenizer recipe trained on the shipped corpus."""
    config = load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer"))
    out = tmp_path_factory.mktemp("debug-tokenizer") / "tokenizer"
    outputs = build_tokenizer(config, out)
    assert outputs["tokenizer"] == str(out)
    return out
