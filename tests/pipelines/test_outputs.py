from __future__ import annotations

import json
from pathlib import Path

import pytest

from tanuki_pipelines.outputs import MESSAGE_ENV, publish_outputs


def test_outputs_file_and_termination_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = tmp_path / "termination-log"
    monkeypatch.setenv(MESSAGE_ENV, str(message))
    outputs = {"checkpoint": "/data/run/checkpoints/step_00000010", "loss": 3.5}
    path = publish_outputs(outputs, tmp_path)
    assert json.loads(path.read_text()) == outputs
    assert json.loads(message.read_text()) == outputs


def test_oversized_outputs_skip_the_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = tmp_path / "termination-log"
    monkeypatch.setenv(MESSAGE_ENV, str(message))
    publish_outputs({"blob": "x" * 5000}, tmp_path)
    assert not message.exists() and (tmp_path / "outputs.json").exists()
