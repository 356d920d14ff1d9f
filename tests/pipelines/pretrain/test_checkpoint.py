"""Atomic publishing: `latest` only ever names a complete checkpoint."""

from __future__ import annotations

from pathlib import Path

from tanuki_pipelines.pretrain import checkpoint as ckpt


def stage(root: Path, step: int) -> Path:
    staged = ckpt.staging_dir(root, step)
    staged.mkdir(parents=True)
    (staged / "model.safetensors").write_bytes(b"weights")
    return staged


def test_publish_moves_latest_and_prunes(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        final = ckpt.publish(stage(tmp_path, step), tmp_path, step, keep_last=2)
        assert ckpt.latest_checkpoint(tmp_path) == final
    assert [p.name for p in ckpt.complete_checkpoints(tmp_path)] == ["step_00000020", "step_00000030"]


def test_half_written_checkpoint_is_never_latest(tmp_path: Path) -> None:
    ckpt.publish(stage(tmp_path, 10), tmp_path, 10, keep_last=3)
    stage(tmp_path, 20)  # a crash happened before publish
    assert ckpt.latest_checkpoint(tmp_path).name == "step_00000010"
    removed = ckpt.remove_stale_staging(tmp_path)
    assert [p.name for p in removed] == [".tmp-step_00000020"]


def test_latest_falls_back_to_newest_complete(tmp_path: Path) -> None:
    assert ckpt.latest_checkpoint(tmp_path) is None
    ckpt.publish(stage(tmp_path, 10), tmp_path, 10, keep_last=3)
    (tmp_path / ckpt.LATEST_FILE).write_text("step_00000099\n")
    assert ckpt.latest_checkpoint(tmp_path).name == "step_00000010"
