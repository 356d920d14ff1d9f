"""``require_checkpoint``: a stage reading a model refuses a path that is not an HF checkpoint directory,
naming the field, before any engine starts (vLLM would take it for a hub repo id)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tanuki_common.errors import BadInputError
from tanuki_pipelines.checkpoints import require_checkpoint


def test_a_checkpoint_directory_passes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert require_checkpoint("model", tmp_path) == tmp_path


@pytest.mark.parametrize(("make", "expected"), [
    (lambda root: None, "model: not set"),
    (lambda root: root / "nowhere", "model: no such directory: {root}/nowhere"),
    (lambda root: (root / "file").write_text("x") and root / "file", "model: no such directory: {root}/file"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "model: {root}/empty has no config.json"),
])
def test_what_is_not_a_checkpoint_is_refused_naming_the_field(tmp_path: Path, make, expected: str) -> None:
    with pytest.raises(BadInputError, match=expected.format(root=tmp_path)):
        require_checkpoint("model", make(tmp_path))


def test_synth_refuses_a_missing_generator_before_starting_vllm(tmp_path: Path) -> None:
    recipe = tmp_path / "synth.yaml"
    recipe.write_text(yaml.safe_dump({"engine": "vllm", "generator": {"path": str(tmp_path / "nonexistent")},
                                      "dialogues": {"count": 2}}))
    result = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "--config", str(recipe),
                             "--output-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"generator.path: no such file or directory: {tmp_path / 'nonexistent'}" in result.stderr
    assert "Traceback" not in result.stderr and "Repo id" not in result.stderr
    assert not (tmp_path / "out" / "shards").exists()  # nothing was planned or generated
