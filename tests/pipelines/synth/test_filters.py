"""The filters one by one (table-driven), MinHash near-duplicate removal on planted pairs, and
``tanuki synth filter`` on a file with broken lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tanuki_pipelines.synth.config import Filters
from tanuki_pipelines.synth.filters import (
    filter_records,
    repeated_phrase,
    run_on,
    text_problem,
    too_short,
    words_per_punctuation,
    wrong_language,
)

JA = ("東京は日本の首都であり、多くの人が暮らしている。交通網が発達しており、電車や地下鉄で便利に移動できる。"
      "観光地も多く、毎年たくさんの旅行者が国内外から訪れる。")
DISTINCT = [
    "京都は長い歴史を持つ古い都で、寺や神社がたくさんある。秋には紅葉が美しく、春には桜を見に多くの人が集まる。",
    "味噌汁は大豆から作る味噌を出汁で溶いた汁物で、豆腐やわかめなどの具を入れて毎日の食卓に並ぶことが多い。",
    "富士山は標高三千七百七十六メートルの日本一高い山で、夏の登山シーズンには山頂を目指す多くの人で混雑する。",
    "新幹線は日本の主要都市を結ぶ高速鉄道で、時速三百キロ近い速さで走り、時間の正確さでも広く知られている。",
    "図書館では本を借りるだけでなく、新聞や雑誌を読んだり、調べ物の相談を司書にしたりすることもよくできる。",
]


@pytest.mark.parametrize(("text", "dropped"), [
    (JA, False),
    ("This is a perfectly ordinary English paragraph about the weather in London today.", True),
    ("asdf qwer zxcv uiop hjkl vbnm tyui ghjk", True),
    ("Ein ganz normaler deutscher Satz über das Wetter in Berlin heute Morgen.", True),
])
def test_the_japanese_score_keeps_japanese_and_drops_english_and_junk(text: str, dropped: bool) -> None:
    assert (wrong_language(text, ["ja"], 0.07) is not None) is dropped


def test_no_languages_means_no_language_filter() -> None:
    assert wrong_language("plain English", [], 0.07) is None


@pytest.mark.parametrize(("text", "limit", "dropped"), [("短い", 5, True), ("ちょうど五文字", 7, False), ("  空白  ", 3, True)])
def test_minimum_length(text: str, limit: int, dropped: bool) -> None:
    assert (too_short(text, limit) is not None) is dropped


@pytest.mark.parametrize(("text", "dropped"), [
    (JA + JA, True),  # the whole 80-odd-character passage twice: over 60 characters repeated
    ("あ" * 61, True),  # a repeat overlapping itself counts
    ("あ" * 60, False),
    (JA + "".join(DISTINCT), False),
])
def test_longest_repeated_phrase(text: str, dropped: bool) -> None:
    assert (repeated_phrase(text, 59) is not None) is dropped


def test_words_per_punctuation_counts_mecab_words() -> None:
    assert words_per_punctuation("今日は晴れ。") == pytest.approx(3.0)  # 今日 / は / 晴れ, one 。
    run_on_text = "今日" + "は晴れで明日も晴れで明後日も晴れで" * 6
    assert run_on(run_on_text, 40) is not None and run_on(JA, 40) is None


def test_a_dialogue_is_judged_on_its_turns_and_needs_an_answer() -> None:
    filters = Filters(min_chars=10)
    answered = {"messages": [{"role": "user", "content": DISTINCT[0]}, {"role": "assistant", "content": DISTINCT[1]}]}
    assert text_problem(answered, filters) is None
    assert text_problem({"messages": answered["messages"][:1]}, filters)[0] == "incomplete_dialogue"
    english = {"messages": [{"role": "user", "content": "What is the capital of France, and why?"},
                            {"role": "assistant", "content": "Paris is the capital of France for historical reasons."}]}
    assert text_problem(english, filters)[0] == "language"
    assert text_problem({"other": 1}, filters)[0] == "malformed"


def test_minhash_keeps_one_of_each_planted_near_duplicate_pair_and_every_distinct_text() -> None:
    records = [{"id": f"d{i}", "text": text} for i, text in enumerate(DISTINCT)]
    planted = []
    for i, text in enumerate(DISTINCT[:3]):  # one character changed: Jaccard of 5-grams well above 0.8
        near = text[:20] + ("を" if text[20] != "を" else "が") + text[21:]
        planted.append({"id": f"near{i}", "text": near})
    exact = {"id": "again", "text": DISTINCT[4]}
    results = {record["id"]: problem for record, problem in filter_records([*records, *planted, exact], Filters())}
    assert all(results[f"d{i}"] is None for i in range(len(DISTINCT)))
    assert [results[f"near{i}"][0] for i in range(3)] == ["near_duplicate"] * 3
    assert results["near0"][1] == "near duplicate of d0"
    assert results["again"] == ("exact_duplicate", "same text as d4")


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
    assert dropped == {"b": "language", "c": "exact_duplicate"}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dropped"] == {"language": 1, "exact_duplicate": 1}
    assert stats["input_problems"] == {"empty line": {"count": 1, "first": ["corpus.jsonl:2"]},
                                       "not JSON": {"count": 1, "first": ["corpus.jsonl:3"]}}
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    nothing = subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "synth", "filter", "--input", str(empty),
                              "--output-dir", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert nothing.returncode == 2 and "empty.jsonl" in nothing.stderr
