"""The shipped debug corpus: the committed files are well-formed, and ``tanuki corpus`` copies them."""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tanuki_pipelines.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "pipelines" / "recipes" / "debug" / "corpus"
SPLITS = ("ja", "en", "synth")
FILES = (*SPLITS, "prompts")


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


OPS: dict[str, Callable[[int, int], int]] = {"+": operator.add, "-": operator.sub, "*": operator.mul,
                                             "/": operator.floordiv}
_JA_WORKING = re.compile(r"式：(\d+)([＋－×÷])(\d+)＝(\d+)")
_EN_WORKING = re.compile(r"Working: (\d+) ([-+x/]) (\d+) = (\d+)")
_SYMBOL_TO_OP = {"＋": "+", "－": "-", "×": "*", "÷": "/", "+": "+", "-": "-", "x": "*", "/": "/"}


@pytest.mark.parametrize(("split", "pattern"), [("ja", _JA_WORKING), ("en", _EN_WORKING)])
def test_worked_answers_in_the_committed_corpus_are_correct(split: str, pattern: re.Pattern[str]) -> None:
    checked = 0
    for doc in _committed_docs(split):
        for a, symbol, b, answer in pattern.findall(doc):
            op = _SYMBOL_TO_OP[symbol]
            assert OPS[op](int(a), int(b)) == int(answer), (a, symbol, b, answer)
            assert op != "/" or int(a) % int(b) == 0, (a, symbol, b, answer)  # divisions come out even
            checked += 1
    assert checked >= 40


def test_the_command_copies_the_committed_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "corpus"  # created, parents too
    assert main(["corpus", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert sorted(path.name for path in out.iterdir()) == sorted(f"{name}.jsonl" for name in FILES)
    assert len(printed) == len(FILES)
    for name, line in zip(FILES, printed, strict=True):
        committed = (COMMITTED / f"{name}.jsonl").read_bytes()
        assert (out / f"{name}.jsonl").read_bytes() == committed, name
        lines = committed.count(b"\n")
        assert line == f"{out / f'{name}.jsonl'}\t{len(committed) / 1024:.1f} KiB\t{lines} docs"
    assert main(["corpus", "--out", str(out)]) == 0  # again, over the copies: the same files
    assert (out / "ja.jsonl").read_bytes() == (COMMITTED / "ja.jsonl").read_bytes()


def test_an_out_that_is_a_file_is_bad_input_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.write_text("not a directory")
    for out in (taken, taken / "corpus"):
        assert main(["corpus", "--out", str(out)]) == 2
        assert str(out) in capsys.readouterr().err
    assert taken.read_text() == "not a directory"

