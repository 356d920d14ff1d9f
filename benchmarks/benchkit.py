"""The shape every benchmark here shares, so that none of them drifts or rots.

- ``machine_facts()`` first: cores, CPU model and the flags that decide speed here, memory.
- One function per side, the same inputs built once before any side runs.
- ``interleave(sides, rounds)``: round r runs the sides in an order rotated by r, so drift of a
  busy machine and cache effects of going first or second fall on every side alike.
- ``Report``: each figure with its median and spread (max ÷ min over rounds); a ratio of two
  sides is printed only when both spreads are ≤ ``MAX_SPREAD``, otherwise it says
  "inconclusive" with the spreads. Where the sides vary more from round to round than they differ,
  ``Report.paired_ratio`` takes the ratio inside each round instead (each unit of work run on both
  sides back to back), and it is the rounds' ratios that must agree. The figures a script promises are named up front; ``finish``
  prints them as one JSON line (``BENCHMARK-FIGURES {...}``) and fails if one is missing, which
  is what the smoke test of every benchmark checks (``--smoke``: a size that runs in seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MAX_SPREAD = 1.2
"""A side whose rounds differ by more than this factor cannot support a ratio."""
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8")
FIGURES_PREFIX = "BENCHMARK-FIGURES "


def add_common_arguments(parser: argparse.ArgumentParser, rounds: int = 3) -> argparse.ArgumentParser:
    parser.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds of every side (median reported)")
    parser.add_argument("--smoke", action="store_true",
                        help="the smallest size that still runs every side once: checks the script, not the speed")
    return parser


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def cpu_model() -> str:
    try:
        line = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
        return line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def memory_gib() -> float:
    try:
        line = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
        return int(line.split()[1]) / 2**20
    except (OSError, StopIteration):
        return float("nan")


def machine_facts(threads: dict[str, int | str] | None = None) -> dict[str, Any]:
    """Print (and return) what the figures depend on: call it before any side runs."""
    flags = cpu_flags()
    facts = {"cores": len(os.sched_getaffinity(0)), "cpu": cpu_model(),
             "flags": [flag for flag in SPEED_FLAGS if flag in flags], "memory_gib": round(memory_gib(), 1),
             "python": platform.python_version(), "threads": threads or {}}
    print(f"machine: {facts['cores']} cores ({facts['cpu']}), CPU flags {' '.join(facts['flags']) or 'none of note'}, "
          f"{facts['memory_gib']} GiB, Python {facts['python']}", flush=True)
    if threads:
        print("threads per side: " + ", ".join(f"{side} {count}" for side, count in threads.items()), flush=True)
    return facts


def has_bf16() -> bool:
    """bf16 instructions (AMX or AVX512-BF16): where vLLM on CPU runs fastest in bfloat16."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def interleave(sides: dict[str, Callable[[], float]], rounds: int,
               on_value: Callable[[str, int, float], None] | None = None) -> dict[str, list[float]]:
    """Each side's value per round; round r starts with side r mod n, so no side always goes first."""
    names = list(sides)
    values: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            value = sides[name]()
            values[name].append(value)
            if on_value:
                on_value(name, round_index, value)
    return values


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0–1) of the values: the nearest rank, no interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def spread(values: Sequence[float]) -> float:
    """max ÷ min over rounds (1.0 for one round: no spread can be seen)."""
    return max(values) / min(values) if min(values) > 0 else float("inf")


class Report:
    """The figures of one benchmark run: printed as they come, and as one JSON line at the end."""

    def __init__(self, name: str, promised: Sequence[str], facts: dict[str, Any]) -> None:
        self.name, self.promised, self.facts = name, list(promised), facts
        self.figures: dict[str, Any] = {}
        self.started = time.monotonic()

    def side(self, label: str, values: Sequence[float], unit: str) -> float:
        """One side's median and spread; returns the median."""
        median = statistics.median(values)
        rounds = ", ".join(f"{value:.4g}" for value in values)
        print(f"  {label:<44} {median:12.4g} {unit}  (spread {spread(values):.2f} over {len(values)} rounds: "
              f"{rounds})", flush=True)
        self.figures[label] = {"median": median, "spread": spread(values), "rounds": list(values), "unit": unit}
        return median

    def value(self, label: str, value: float | str, unit: str = "", goal: str = "") -> None:
        """A single figure (no sides to compare)."""
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"  {label:<44} {shown} {unit}" + (f"  (goal {goal})" if goal else ""), flush=True)
        self.figures[label] = {"value": value, "unit": unit, "goal": goal}

    def ratio(self, label: str, numerator: Sequence[float], denominator: Sequence[float], goal: str = "",
              higher_is_better: bool = True) -> float | None:
        """numerator ÷ denominator of the medians, or None ("inconclusive") when a spread is too wide."""
        spreads = spread(numerator), spread(denominator)
        if max(spreads) > MAX_SPREAD:
            print(f"  {label:<44} inconclusive: spreads {spreads[0]:.2f} and {spreads[1]:.2f} "
                  f"(> {MAX_SPREAD}); run it again on a quieter machine or with more --rounds", flush=True)
            self.figures[label] = {"ratio": None, "inconclusive": True, "spreads": list(spreads), "goal": goal}
            return None
        value = statistics.median(numerator) / statistics.median(denominator)
        caveat = " (one round: spread unseen)" if min(len(numerator), len(denominator)) < 2 else ""
        print(f"  {label:<44} {value:.3f}×" + (f"  (goal {goal})" if goal else "") + caveat, flush=True)
        self.figures[label] = {"ratio": value, "inconclusive": False, "spreads": list(spreads), "goal": goal,
                               "higher_is_better": higher_is_better}
        return value

    def paired_ratio(self, label: str, per_round: Sequence[float], goal: str = "",
                     higher_is_better: bool = True) -> float | None:
        """The median of ratios already taken within each round (one side ÷ the other on the same
        work, run back to back), or None ("inconclusive") when the rounds' ratios differ by more
        than ``MAX_SPREAD``: noise both sides share within a round cancels out of such a ratio."""
        rounds_spread = spread(per_round)
        shown = ", ".join(f"{value:.3f}" for value in per_round)
        if rounds_spread > MAX_SPREAD:
            print(f"  {label:<44} inconclusive: the rounds' ratios ({shown}) differ by {rounds_spread:.2f}× "
                  f"(> {MAX_SPREAD}); run it again on a quieter machine or with more --rounds", flush=True)
            self.figures[label] = {"ratio": None, "inconclusive": True, "paired": True, "rounds": list(per_round),
                                   "spread": rounds_spread, "goal": goal}
            return None
        value = statistics.median(per_round)
        caveat = " (one round: spread unseen)" if len(per_round) < 2 else ""
        print(f"  {label:<44} {value:.3f}×" + (f"  (goal {goal})" if goal else "")
              + f"  (paired; spread {rounds_spread:.2f} over {len(per_round)} rounds: {shown}){caveat}", flush=True)
        self.figures[label] = {"ratio": value, "inconclusive": False, "paired": True, "rounds": list(per_round),
                               "spread": rounds_spread, "goal": goal, "higher_is_better": higher_is_better}
        return value

    def finish(self) -> int:
        """The JSON line the smoke test reads; exit status 1 when a promised figure is missing."""
        missing = [name for name in self.promised if name not in self.figures]
        print(FIGURES_PREFIX + json.dumps({"benchmark": self.name, "promised": self.promised, "missing": missing,
                                           "figures": self.figures, "machine": self.facts,
                                           "seconds": round(time.monotonic() - self.started, 1)},
                                          ensure_ascii=False, default=str), flush=True)
        if missing:
            print(f"{self.name}: promised figures missing: {missing}", file=sys.stderr)
            return 1
        return 0
