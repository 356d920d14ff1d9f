"""``tanuki synth``'s filters as curation steps: the shape checks, the steps a ``Filters`` stands
for, near-duplicate removal on planted pairs through the curation engine (one worker and two), and
``tanuki synth filter`` on a file with broken lines. The steps themselves are tested in
tests/pipelines/curate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tanuki_pipelines.curate.config import ExactDedup, Language, Length, NearDedup, Punctuation, RepeatedPhrase
from tanuki_pipelines.synth.config import Filters
from tanuki_pipelines.synth.filters import curation_steps, filter_records, shape_problem

DISTINCT = [
    "京都は長い歴史を持つ古い都で、寺や神社がたくさんある。秋には紅葉が美しく、春には桜を見に多くの人が集まる。",
    "味噌汁は大豆から作る味噌を出汁で溶いた汁物で、豆腐やわかめなどの具を入れて毎日の食卓に並ぶことが多い。",
    "富士山は標高三千七百七十六メートルの日本一高い山で、夏の登山シーズンには山頂を目指す多くの人で混雑する。",
    "新幹線は日本の主要都市を結ぶ高速鉄道で、時速三百キロ近い速さで走り、時間の正確さでも広く知られている。",
    "図書館では本を借りるだけでなく、新聞や雑誌を読んだり、調べ物の相談を司書にしたりすることもよくできる。",
]


def test_a_dialogue_is_judged_on_its_turns_and_needs_an_answer(tmp_path: Path) -> None:
    answered = {"id": "ja", "messages": [{"role": "user", "content": DISTINCT[0]},
                                         {"role": "assistant", "content": DISTINCT[1]}]}
    assert shape_problem(answered) is None
    assert shape_problem({"messages": answered["messages"][:1]}) == ("incomplete_dialogue", "no assistant turn")
    assert shape_problem({"other": 1})[0] == "malformed"
    assert shape_problem({"text": " \n"}) == ("length", "empty text")
    english = {"id": "en", "messages": [
        {"role": "user", "content": "What is the capital of France, and why has it been so for so long?"},
        {"role": "assistant", "content": "Paris is the capital of France for historical and economic reasons."}]}
    results = {record["id"]: problem for record, problem in
               filter_records([answered, english], Filters(min_chars=10), tmp_path / "work")}
    assert results["ja"] is None and results["en"][0] == "language"


def test_filters_stand_for_curation_steps_in_order() -> None:
    steps = curation_steps(Filters(languages=["ja", "en"], language_threshold=0.2, min_chars=7, exact_dedup=False,
                                   near_duplicate_threshold=0.7, minhash_permutations=64, shingle_chars=3))
    assert [type(step) for step in steps] == [Language, Length, RepeatedPhrase, Punctuation, NearDedup]
    assert steps[0].languages == ["ja", "en"] and steps[0].threshold == 0.2 and steps[1].min_chars == 7
    assert (steps[-1].threshold, steps[-1].num_perm, steps[-1].shingle_chars) == (0.7, 64, 3)
    assert [type(step) for step in curation_steps(Filters(languages=[]))] == [
        Length, RepeatedPhrase, Punctuation, ExactDedup, NearDedup]


@pytest.mark.parametrize("workers", [1, 2])
def test_minhash_keeps_the_first_of_each_planted_near_duplicate_and_every_distinct_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    monkeypatch.setattr("tanuki_pipelines.synth.filters.CHUNK_RECORDS", 4)  # three staged files: three tasks
    records = [{"id": f"d{i}", "text": text} for i, text in enumerate(DISTINCT)]
    planted = []
    for i, text in enumerate(DISTINCT[:3]):
        # The last character changed: one 5-gram of ~48 differs, Jaccard ≈ 0.96, caught with probability
        # > 0.9999 under the default bands. (A change mid-text alters five 5-grams: Jaccard ≈ 0.81, right
        # at the 0.8 threshold, where a copy escapes about one time in three.)
        near = text[:-1] + "！"
        planted.append({"id": f"near{i}", "text": near})
    broken = {"id": "broken"}
    blank = {"id": "blank", "text": "  "}  # never staged: the positions after it stay the lines
    exact = {"id": "again", "text": DISTINCT[4]}
    results = filter_records([*records, broken, blank, *planted, exact], Filters(), tmp_path / "work", workers)
    assert [record["id"] for record, _ in results] == [*(r["id"] for r in records), "broken", "blank",
                                                       *(r["id"] for r in planted), "again"]
    problems = {record["id"]: problem for record, problem in results}
    assert all(problems[f"d{i}"] is None for i in range(len(DISTINCT)))
    assert [problems[f"near{i}"][0] for i in range(3)] == ["near_dedup"] * 3
    assert problems["near0"][1] == "near duplicate of d0"
    assert problems["again"] == ("exact_dedup", "exact duplicate of d4")
    assert problems["broken"][0] == "malformed" and problems["blank"] == ("length", "empty text")


def test_synth_filter_command_keeps_fields_counts_reasons_and_broken_lines(tmp_path: Path) -> None:
    source = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"id": "a", "text": DISTINCT[0], "meta": {"url": "x"}}, ensure_ascii=False), "",
             "{not json", json.dumps({"id": "b", "text": "English text that is long enough to be judged by language."}),
             json.dumps({"id": "c", "text": DISTINCT[0]}, ensure_ascii=False)]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "filter", "--input", str(source),
                           "--output-dir", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    kept = [json.loads(line) for line in (out / "kept.jsonl").read_text().splitlines()]
    dropped = {r["id"]: r["drop_reason"] for r in map(json.loads, (out / "dropped.jsonl").read_text().splitlines())}
    assert kept == [{"id": "a", "text": DISTINCT[0], "meta": {"url": "x"}}]
    assert dropped == {"b": "language", "c": "exact_dedup"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dropped"] == {"language": 1, "exact_dedup": 1}
    assert stats["input_problems"] == {"empty line": {"count": 1, "first": ["corpus.jsonl:2"]},
                                       "not JSON": {"count": 1, "first": ["corpus.jsonl:3"]}}
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    nothing = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "filter", "--input", str(empty),
                              "--output-dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert nothing.returncode == 2 and "empty.jsonl" in nothing.stderr
