"""Every shipped recipe loads and validates (litgpt's test_config_hub habit)."""

from __future__ import annotations

import pytest

from tanuki_pipelines.config import load_recipe
from tanuki_pipelines.dpo.config import DPOConfig
from tanuki_pipelines.pretrain.config import MODEL_PRESETS, ModelConfig, PretrainConfig
from tanuki_pipelines.pretrain.model import count_parameters, count_parameters_on_meta
from tanuki_pipelines.quantize.config import QuantizeConfig
from tanuki_pipelines.recipes import all_shipped_recipes
from tanuki_pipelines.sft.config import SFTConfig
from tanuki_pipelines.synth.config import SynthConfig
from tanuki_pipelines.tokenize.config import TokenizeConfig
from tanuki_pipelines.tokenizer.config import TokenizerConfig
from tanuki_pipelines.upcycle.config import UpcycleConfig

STAGE_MODELS = {"pretrain": PretrainConfig, "tokenizer": TokenizerConfig, "upcycle": UpcycleConfig,
                "synth": SynthConfig, "sft": SFTConfig, "dpo": DPOConfig, "quantize": QuantizeConfig,
                "tokenize": TokenizeConfig}
"""Recipe model of each stage; a stage's variants are named ``<stage>-<variant>`` (``quantize-gguf``)."""
RECIPES = all_shipped_recipes()


def test_recipes_are_shipped() -> None:
    names = {(name, stage) for name, stage, _ in RECIPES}
    assert {("debug", "pretrain"), ("debug", "tokenizer"), ("1b", "pretrain"),
            ("tanuki-8b", "pretrain"), ("tanuki-8b", "tokenizer")} <= names


@pytest.mark.parametrize(("name", "stage", "path"), RECIPES, ids=[f"{n}/{s}" for n, s, _ in RECIPES])
def test_shipped_recipe_validates(name: str, stage: str, path) -> None:
    base = stage.partition("-")[0]
    assert base in STAGE_MODELS, f"{path}: no recipe model for stage {stage!r}"
    load_recipe(STAGE_MODELS[base], path)


@pytest.mark.parametrize("preset", sorted(MODEL_PRESETS))
def test_closed_form_count_matches_the_hf_module(preset: str) -> None:
    model = ModelConfig(preset=preset)
    assert count_parameters(model).total == count_parameters_on_meta(model)


def test_tanuki_8b_is_about_7_5_billion() -> None:
    total = count_parameters_on_meta(ModelConfig(preset="tanuki-8b"))
    assert 7.4e9 < total < 7.6e9


def test_tanuki_8x8b_is_about_47b_total_13b_active() -> None:
    model = ModelConfig(preset="tanuki-8x8b")
    counts = count_parameters(model)
    assert counts.total == count_parameters_on_meta(model)
    assert 46.5e9 < counts.total < 47.5e9 and 12.9e9 < counts.active < 13.4e9
