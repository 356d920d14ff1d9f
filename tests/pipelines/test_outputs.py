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


def test_progress_lines_round_trip_and_the_last_one_wins() -> None:
    from tanuki_pipelines.outputs import format_progress, parse_progress

    log = "\n".join(["starting", format_progress(5, 150, 1000, 6.5), "[tanuki pretrain] step 6",
                     format_progress(60, 150, 12000, 4.25), "[tanuki progress] {torn"])
    assert parse_progress(log) == {"step": 60, "totalSteps": 150, "tokens": 12000, "loss": 4.25,
                                   "summary": "40% (60/150)"}
    assert parse_progress("no progress here") is None
