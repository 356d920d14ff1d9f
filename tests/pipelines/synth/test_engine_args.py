"""vLLM's engine arguments from the generator recipe: eager on CPUs unless the recipe asks to
compile, compiled on GPUs unless it asks for eager; no checkpoint is a named error."""

from __future__ import annotations

from pathlib import Path

import pytest

from tanuki_common.errors import BadInputError
from tanuki_pipelines.synth.config import GeneratorModel
from tanuki_pipelines.synth.engines import vllm_engine_args


@pytest.mark.parametrize(("asked", "on_gpu", "eager"), [
    (None, False, True), (None, True, False), (False, False, False), (True, True, True)])
def test_eager_follows_the_device_unless_the_recipe_says(tmp_path: Path, asked: bool | None, on_gpu: bool,
                                                         eager: bool) -> None:
    generator = GeneratorModel(path=tmp_path, dtype="bfloat16", enforce_eager=asked, tensor_parallel_size=2)
    arguments = vllm_engine_args(generator, seed=7, on_gpu=on_gpu)
    assert arguments == {"model": str(tmp_path), "max_model_len": 4096, "tensor_parallel_size": 2,
                         "dtype": "bfloat16", "seed": 7, "enforce_eager": eager}


def test_no_checkpoint_names_the_field() -> None:
    with pytest.raises(BadInputError, match="generator.path"):
        vllm_engine_args(GeneratorModel(), seed=0, on_gpu=False)
