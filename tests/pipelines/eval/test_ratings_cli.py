"""`tanuki eval ratings` on separated logs: the outputs, the page and the PNG say "not estimable"
with the record instead of a number, and show no zero-width interval."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from tanuki_pipelines.eval.main import main, make_parser


def rate_file(tmp_path: Path, battles: list[tuple[str, str, str]], *sets: str) -> tuple[dict, str, dict]:
    log = tmp_path / "battles.jsonl"
    log.write_text("".join(json.dumps({"model_a": a, "model_b": b, "winner": w}) + "\n" for a, b, w in battles))
    recipe = tmp_path / "eval.yaml"
    recipe.write_text("ratings: {bootstrap_rounds: 50}\n")
    out = tmp_path / "out"
    args = make_parser(argparse.ArgumentParser()).parse_args(
        ["ratings", "--config", str(recipe), "--battles", str(log), "--output-dir", str(out),
         *[a for s in sets for a in ("--set", s)]])
    assert main(args) == 0
    return (json.loads((out / "outputs.json").read_text()), (out / "index.html").read_text(),
            json.loads((out / "leaderboard.json").read_text()))


def intervals(page: str) -> list[tuple[str, str]]:
    return re.findall(r"<td>(-?[\d.]+) – (-?[\d.]+)</td>", page)


def test_one_battle_claims_no_rating(tmp_path: Path) -> None:
    outputs, page, board = rate_file(tmp_path, [("x", "y", "model_a")])
    assert outputs["top_model"] == "x" and outputs["top_score"] == "BT not estimable (1–0)"
    assert page.count("not estimable") == 2 and "never lost (1–0)" in page and "never won (0–1)" in page
    assert "fewer than 10 battles" in page and intervals(page) == []
    assert (tmp_path / "out" / "leaderboard.png").stat().st_size > 1000
    assert board["bt_method"] == {"prior_sd": None, "anchor": None, "anchor_unrated": None}


def test_the_demo_arena_case_twelve_wins_shows_records_and_a_prior_when_asked(tmp_path: Path) -> None:
    outputs, page, _ = rate_file(tmp_path, [("dpo", "sft", "model_a")] * 12)
    assert outputs["top_score"] == "BT not estimable (12–0)" and "fewer than" not in page
    assert intervals(page) == []
    outputs, page, board = rate_file(tmp_path, [("dpo", "sft", "model_a")] * 12, "ratings.prior_sd=400")
    rating = board["models"][0]["bt"]["rating"]
    assert outputs["top_score"] == f"BT {rating:.0f}" and 1000 < rating < 1400
    assert "Gaussian prior" in page and "none: 12–0, one-sided in every resample" in page
    assert all(low != high for low, high in intervals(page))


def test_a_three_model_log_with_one_unbeaten_model_rates_the_other_two(tmp_path: Path) -> None:
    battles = [("a", "b", "model_a")] * 6 + [("c", "a", "model_b")] * 6 + [("b", "c", "model_a")] * 7 \
        + [("b", "c", "model_b")] * 5 + [("b", "c", "tie")] * 2
    outputs, page, board = rate_file(tmp_path, battles, "ratings.anchor_model=a")
    assert [row["model"] for row in board["models"]] == ["a", "b", "c"]
    assert outputs["top_score"] == "BT not estimable (12–0)"
    assert len(intervals(page)) == 2 and all(float(low) < float(high) for low, high in intervals(page))
    assert "never lost to the rated models (12–0)" in page and "The anchor a cannot be rated" in page
