"""The wheel works without the source tree: recipes and examples ship inside it.

Builds the wheel, installs it (not editable, no dependencies) into a throw-away virtual
environment that borrows this environment's third-party packages, and runs ``tanuki model-info``
on a shipped recipe and ``tanuki render`` on a shipped example from a directory outside the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_installed_wheel_finds_its_recipes_and_examples(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building in the checkout would leave build/ behind
    source.mkdir()
    for part in ("pyproject.toml", "README.md", "operator", "pipelines", "serving", "examples"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy2
        copy(REPO / part, source / part, **({"symlinks": True} if (REPO / part).is_dir() else {}))
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(source)], check=True, timeout=300)
    (wheel,) = dist.glob("tanuki-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # third-party packages from this environment (torch, pydantic, ...), after the venv's own
    (site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "-q",
                    "--disable-pip-version-check", str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def tanuki(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin" / "tanuki"), *args], cwd=elsewhere, capture_output=True,
                              text=True, timeout=300)

    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import tanuki_pipelines; print(tanuki_pipelines.__file__)"],
                           cwd=elsewhere, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the installed copy, not the checkout
    for data in ("eval/questions/ja_mt_bench.jsonl", "eval/harness_tasks/tanuki_ja_mc.yaml",
                 "eval/harness_tasks/tanuki_ja_mc.jsonl"):  # what `tanuki eval` reads by default
        assert (site / "tanuki_pipelines" / data).is_file(), data
    info = tanuki("model-info", "--config", "tanuki-8b/pretrain", "--json")
    assert info.returncode == 0, info.stderr[-2000:]
    assert '"total_parameters": 7512264704' in info.stdout
    rendered = tanuki("render", "-f", "debug-chain", "--namespace", "ml")
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert "kind: Job" in rendered.stdout and "tanuki_pipelines.pretrain.train" in rendered.stdout
    missing = tanuki("render", "-f", "no-such-chain")
    assert missing.returncode == 2 and "shipped examples: debug-chain" in missing.stderr
