"""Publishing outputs: complete under the final name or absent; replacing keeps the old one whole until the swap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tanuki_pipelines.publish import FAULT_ENV, remove_stale, staging, write_durable


def test_staging_publishes_on_success_and_replaces_an_earlier_copy(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with staging(final) as staged:
        assert staged.name == ".tmp-out" and not final.exists()
        (staged / "a.bin").write_bytes(b"1")
    assert (final / "a.bin").read_bytes() == b"1"
    with staging(final) as staged:
        (staged / "b.bin").write_bytes(b"2")
        assert (final / "a.bin").exists()  # the earlier copy stays whole while the new one is written
    assert sorted(p.name for p in final.iterdir()) == ["b.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_block_publishes_nothing_and_the_next_attempt_starts_clean(tmp_path: Path) -> None:
    final = tmp_path / "out"
    with pytest.raises(RuntimeError), staging(final) as staged:
        (staged / "half.bin").write_bytes(b"x")
        raise RuntimeError("the stage failed")
    assert not final.exists() and (tmp_path / ".tmp-out" / "half.bin").exists()
    with staging(final) as staged:
        assert list(staged.iterdir()) == []
    assert remove_stale(tmp_path) == []


def test_write_durable_replaces_the_file_whole(tmp_path: Path) -> None:
    path = write_durable(tmp_path / "outputs.json", '{"a": 1}\n')
    write_durable(path, b'{"a": 2}\n')
    assert path.read_text() == '{"a": 2}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["outputs.json"]


@pytest.mark.parametrize("point", ["out:before-rename", "out:after-rename"])
def test_sigkill_around_the_rename_leaves_the_old_or_the_new_copy_never_a_mix(tmp_path: Path, point: str) -> None:
    script = f"""
import sys
from pathlib import Path
from tanuki_pipelines.publish import staging
with staging(Path({str(tmp_path / 'out')!r})) as staged:
    (staged / 'v.txt').write_text(sys.argv[1])
"""
    subprocess.run([sys.executable, "-c", script, "old"], check=True)
    killed = subprocess.run([sys.executable, "-c", script, "new"], env={**__import__("os").environ, FAULT_ENV: point})
    assert killed.returncode == -9
    expected = "old" if point == "out:before-rename" else "new"
    assert (tmp_path / "out" / "v.txt").read_text() == expected
    subprocess.run([sys.executable, "-c", script, "new"], check=True)
    assert (tmp_path / "out" / "v.txt").read_text() == "new"
    assert remove_stale(tmp_path) == []
