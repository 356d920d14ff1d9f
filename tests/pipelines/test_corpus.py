"""The self-written debug corpus: committed files are current, well-formed and deterministic."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tanuki_pipelines.corpus.generate import (
    OPS,
    build_debug_corpus,
    generate_problem,
    main,
    write_debug_corpus,
)

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "pipelines" / "recipes" / "debug" / "corpus"
SPLITS = ("ja", "en", "synth")
FILES = (*SPLITS, "prompts")
REGENERATE = (
    "PYTHONPATH=pipelines python3 -m tanuki_pipelines.corpus.generate "
    "--out pipelines/recipes/debug/corpus"
)


def _committed_docs(split: str) -> list[str]:
    lines = (COMMITTED / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def test_prompts_are_japanese_questions_none_of_them_an_eval_question() -> None:
    from tanuki_pipelines.eval.records import load_questions

    prompts = [json.loads(line)["prompt"] for line in (COMMITTED / "prompts.jsonl").read_text().splitlines()]
    assert len(prompts) >= 16 and len(set(prompts)) == len(prompts)
    assert all(_japanese_share(prompt) > 0.5 for prompt in prompts)
    eval_turns = {turn for question in load_questions(None).items for turn in question.turns}
    assert not eval_turns & set(prompts)


def _japanese_share(text: str) -> float:
    """Share of characters that are kana, CJK ideographs, or CJK/full-width punctuation."""
    ja = sum(
        1
        for c in text
        if "\u3000" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" or "\uff00" <= c <= "\uffef"
    )
    return ja / len(text)


def _ascii_share(text: str) -> float:
    return sum(c.isascii() for c in text) / len(text)


def _digest(corpus: dict[str, list[str]]) -> str:
    return hashlib.sha256(json.dumps(corpus, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("split", FILES)
def test_committed_corpus_matches_generator(tmp_path: Path, split: str) -> None:
    paths = write_debug_corpus(tmp_path, seed=0)
    assert set(paths) == set(FILES)
    assert paths[split].read_bytes() == (COMMITTED / f"{split}.jsonl").read_bytes(), (
        f"{split}.jsonl is stale; regenerate it with: {REGENERATE}"
    )


@pytest.mark.parametrize("split", SPLITS)
def test_every_line_is_a_json_object_with_text(split: str) -> None:
    lines = (COMMITTED / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 100
    for number, line in enumerate(lines, 1):
        record = json.loads(line)
        assert isinstance(record, dict) and list(record) == ["text"], f"{split}:{number}"
        text = record["text"]
        assert isinstance(text, str) and text.strip(), f"{split}:{number}: empty text"
        assert 100 <= len(text) <= 2000, f"{split}:{number}: {len(text)} chars"


def test_committed_sizes_are_in_the_intended_range() -> None:
    kb = {split: (COMMITTED / f"{split}.jsonl").stat().st_size / 1000 for split in SPLITS}
    assert 200 <= kb["ja"] <= 260, kb
    assert 120 <= kb["en"] <= 160, kb
    assert 70 <= kb["synth"] <= 100, kb


def test_japanese_documents_are_mostly_japanese() -> None:
    for doc in _committed_docs("ja"):
        assert _japanese_share(doc) > 0.5, doc[:80]


def test_english_documents_are_mostly_ascii() -> None:
    for doc in _committed_docs("en"):
        assert _ascii_share(doc) > 0.95, doc[:80]
        assert _japanese_share(doc) == 0, doc[:80]


def test_synthetic_documents_are_mostly_japanese_with_some_english() -> None:
    docs = _committed_docs("synth")
    ja = [d for d in docs if _japanese_share(d) > 0.5]
    en = [d for d in docs if _ascii_share(d) > 0.95]
    assert len(ja) + len(en) == len(docs)
    assert len(ja) > 2 * len(en) > 0


def test_documents_are_not_duplicated() -> None:
    for split in SPLITS:
        docs = _committed_docs(split)
        assert len(set(docs)) == len(docs), split


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_generated_word_problems_have_correct_answers(lang: str) -> None:
    ops_seen = []
    for seed in range(300):
        problem = generate_problem(random.Random(seed), lang)
        assert OPS[problem.op](problem.a, problem.b) == problem.answer, problem
        assert problem.answer > 0, problem
        if problem.op == "/":
            assert problem.a % problem.b == 0, problem
        assert str(problem.a) in problem.text and str(problem.b) in problem.text, problem
        ops_seen.append(problem.op)
    assert sorted(set(ops_seen)) == sorted(OPS)


_JA_WORKING = re.compile(r"式：(\d+)([＋－×÷])(\d+)＝(\d+)")
_EN_WORKING = re.compile(r"Working: (\d+) ([-+x/]) (\d+) = (\d+)")
_SYMBOL_TO_OP = {"＋": "+", "－": "-", "×": "*", "÷": "/", "+": "+", "-": "-", "x": "*", "/": "/"}


@pytest.mark.parametrize(("split", "pattern"), [("ja", _JA_WORKING), ("en", _EN_WORKING)])
def test_worked_answers_in_the_committed_corpus_are_correct(split: str, pattern: re.Pattern[str]) -> None:
    checked = 0
    for doc in _committed_docs(split):
        for a, symbol, b, answer in pattern.findall(doc):
            assert OPS[_SYMBOL_TO_OP[symbol]](int(a), int(b)) == int(answer), (a, symbol, b, answer)
            checked += 1
    assert checked >= 40


def test_different_seeds_give_different_corpora() -> None:
    first, second = build_debug_corpus(seed=0), build_debug_corpus(seed=1)
    for split in SPLITS:
        assert first[split] != second[split], split


def test_output_does_not_depend_on_the_python_hash_seed() -> None:
    code = (
        "import hashlib, json;"
        "from tanuki_pipelines.corpus.generate import build_debug_corpus;"
        "c = build_debug_corpus(0);"
        "print(hashlib.sha256(json.dumps(c, ensure_ascii=False, sort_keys=True).encode()).hexdigest())"
    )
    pythonpath = os.pathsep.join(filter(None, [str(REPO / "pipelines"), os.environ.get("PYTHONPATH")]))
    digests = set()
    for hash_seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": pythonpath}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(result.stdout.strip())
    assert digests == {_digest(build_debug_corpus(0))}


def test_generation_is_fast() -> None:
    started = time.perf_counter()
    build_debug_corpus(seed=7)
    assert time.perf_counter() - started < 2.0


def test_main_writes_and_reports_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "out"), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    for split in SPLITS:
        path = tmp_path / "out" / f"{split}.jsonl"
        assert path.is_file() and path.stat().st_size > 0
        assert str(path) in printed
