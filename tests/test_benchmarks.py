"""Every benchmark runs at its ``--smoke`` size and prints the figures it promises, so an API change
that breaks one fails here instead of on the next person who runs it (the values are not checked:
speed goals are measured on a quiet machine, never in tests). ``gpu_check.py`` has its own test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"
# the kit, its own test, baselines
NOT_BENCHMARKS = {"benchkit.py", "gpu_check.py", "legacy_packing.py", "legacy_synth_filter.py"}
PREFIX = "BENCHMARK-FIGURES "


def scripts() -> list[str]:
    return sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in NOT_BENCHMARKS)


@pytest.fixture(scope="module")
def benchkit():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import benchkit as module
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_sides_take_turns_going_first(benchkit) -> None:
    calls: list[str] = []
    values = benchkit.interleave({name: (lambda name=name: calls.append(name) or len(calls)) for name in "abc"}, 3)
    assert calls == list("abc" "bca" "cab")
    assert values == {"a": [1, 6, 8], "b": [2, 4, 9], "c": [3, 5, 7]}


def test_a_ratio_needs_steady_sides_and_a_report_needs_its_promised_figures(benchkit, capsys) -> None:
    report = benchkit.Report("demo", ["steady", "noisy", "single"], {})
    assert report.ratio("steady", [10.0, 11.0, 10.5], [5.0, 5.2, 5.1]) == pytest.approx(10.5 / 5.1)
    assert report.ratio("noisy", [10.0, 20.0], [5.0, 5.1]) is None
    assert "inconclusive: spreads 2.00 and 1.02" in capsys.readouterr().out
    assert report.finish() == 1  # "single" never came
    report.value("single", 3.0, "s")
    assert report.finish() == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    figures = json.loads(line[len(PREFIX):])
    assert figures["missing"] == [] and figures["figures"]["noisy"]["inconclusive"] is True


def test_a_paired_ratio_needs_rounds_that_agree_not_steady_sides(benchkit, capsys) -> None:
    report = benchkit.Report("demo", ["paired", "disagreeing"], {})
    # each round's ratio was taken within the round: the sides may drift between rounds freely
    assert report.paired_ratio("paired", [1.04, 1.08, 1.06], goal="≤ 1.1") == pytest.approx(1.06)
    assert "(paired; spread 1.04 over 3 rounds" in capsys.readouterr().out
    assert report.paired_ratio("disagreeing", [1.0, 1.3]) is None
    assert "inconclusive: the rounds' ratios (1.000, 1.300) differ by 1.30×" in capsys.readouterr().out
    assert report.finish() == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1][len(PREFIX):])["figures"]
    assert figures["paired"]["ratio"] == pytest.approx(1.06) and figures["paired"]["paired"] is True
    assert figures["disagreeing"]["inconclusive"] is True and figures["disagreeing"]["ratio"] is None


def test_every_benchmark_has_a_smoke_size_and_uses_the_kit() -> None:
    for name in scripts():
        text = (BENCHMARKS / name).read_text()
        assert "--smoke" in text or "add_common_arguments" in text, name
        assert "Report(" in text and "machine_facts(" in text, name


@pytest.mark.slow
@pytest.mark.parametrize("script", scripts())
def test_benchmark_smoke(script: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--smoke"], capture_output=True, text=True,
                          timeout=600, cwd=REPO, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    lines = [line for line in done.stdout.splitlines() if line.startswith(PREFIX)]
    assert len(lines) == 1, done.stdout[-3000:]
    result = json.loads(lines[0][len(PREFIX):])
    assert result["promised"] and result["missing"] == []
    assert done.stdout.splitlines()[0].startswith("machine: ")  # the machine's facts come first
    for name in result["promised"]:
        figure = result["figures"][name]
        shown = [figure[key] for key in ("median", "value", "ratio") if key in figure]
        assert shown, (name, figure)
        assert shown[0] is not None or figure.get("inconclusive"), (name, figure)
