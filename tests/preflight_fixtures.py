"""Helpers of the preflight tables: stand-in checkpoints (config.json, an empty weights file and a real
tokenizer: what a preflight reads) and running a stage's program on a recipe that it must refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 4096, "hidden_size": 128,
         "intermediate_size": 384, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "max_position_embeddings": 1024}
"""The debug preset's shape."""
MIXTRAL = {**LLAMA, "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4,
           "num_experts_per_tok": 2}


def stand_in_checkpoint(path: Path, tokenizer_dir: Path, **fields: Any) -> Path:
    """A directory a preflight takes for an HF checkpoint of ``LLAMA``'s shape (with ``fields``)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({**LLAMA, **fields}))
    (path / "model.safetensors").write_bytes(b"")
    for file in tokenizer_dir.iterdir():
        if file.is_file():
            shutil.copy(file, path / file.name)
    return path


def jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in records), encoding="utf-8")
    return path


def never(name: str) -> Any:
    """A stand-in for an expensive step that a refused run must not reach."""
    def called(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} ran although the preflight should have refused the recipe")
    return called


def assert_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, recipe: dict[str, Any],
                   expected: str, extra: list[str] | None = None) -> str:
    """``tanuki COMMAND`` on ``recipe`` exits 2 naming ``expected``, without a traceback, publishing nothing."""
    from tanuki_pipelines.cli import main as tanuki

    config = tmp_path / "refused.yaml"
    config.write_text(yaml.safe_dump(recipe, allow_unicode=True))
    out = tmp_path / "out"
    code = tanuki([command, *(extra or []), "--config", str(config), "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert expected in err, err
    assert "Traceback" not in err
    assert not (out / "outputs.json").exists()
    return err


def problems_of(model: type, raw: dict[str, Any], base: Path, gpus: int = 0) -> list[str]:
    """What the stage's preflight finds of the recipe ``raw`` (validated as ``model``) with ``gpus``."""
    from tanuki_pipelines.config import validate_recipe
    from tanuki_pipelines.preflight import Hardware
    from tanuki_pipelines.preflights import findings

    return findings(validate_recipe(model, raw, base, "test"), Hardware(gpus=gpus)).problems
