"""Build the project's own debug corpus: Japanese, English and "synthetic" JSONL.

Why this exists: unit tests, CI and the laptop-sized demo must never
download data, yet the data pipeline (cleaning, dedup, filtering, tokenizer
training, mixing) needs realistic bilingual text to chew on. So the project
ships hand-written seed paragraphs (``seeds/ja.txt``, ``seeds/en.txt``,
original to this project) and this deterministic expander, which adds
template documents (fictional towns, recipes with scaled quantities,
arithmetic word problems with verified answers, timetables, dialogues,
diaries, news, notices, forecasts) and a "synth" split that imitates the
output of an LLM rewriting pipeline (Q&A, summary, letter, interview, news,
report).

Output is a pure function of ``seed``: all randomness comes from seeded
``random.Random`` streams and nothing depends on hash or set ordering, so
the committed files in ``pipelines/recipes/debug/corpus`` can be checked
byte-for-byte by the tests.

    PYTHONPATH=pipelines python3 -m tanuki_pipelines.corpus.generate \\
        --out pipelines/recipes/debug/corpus
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

from . import en_templates, ja_templates
from .common import SEEDS_DIR, load_seed_paragraphs, sub_rng
from .problems import OPS, WordProblem, generate_problem, problem_set_doc
from .synth import rewrite

__all__ = [
    "OPS", "WordProblem", "generate_problem", "build_debug_corpus", "write_debug_corpus", "main",
]

SPLITS = ("ja", "en", "synth")
PROBLEM_SETS = {"ja": 22, "en": 16}  # worksheets of 3-5 word problems each
EN_SYNTH_SHARE = 20  # English seed paragraphs that also get a synthetic rewrite
JA_SYNTH_EXTRA = 12  # Japanese seed paragraphs rewritten in a second style too

Generator = tuple[str, Callable[[random.Random], str], int]


def _unique(make: Callable[[], str], count: int) -> list[str]:
    """``count`` distinct documents from ``make`` (small template spaces can repeat)."""
    docs: list[str] = []
    seen: set[str] = set()  # membership only; output order is generation order
    for _ in range(count * 20):
        doc = make()
        if doc not in seen:
            seen.add(doc)
            docs.append(doc)
            if len(docs) == count:
                return docs
    raise RuntimeError(f"template space too small for {count} distinct documents")


def _template_docs(seed: int, lang: str, generators: Sequence[Generator]) -> list[str]:
    docs: list[str] = []
    for name, make, count in generators:
        docs += _unique(partial(make, sub_rng(seed, f"{lang}:{name}")), count)
    return docs


def _problem_docs(seed: int, lang: str) -> list[str]:
    rng = sub_rng(seed, f"{lang}:problems")
    return _unique(lambda: problem_set_doc(rng, lang, rng.randint(3, 5))[0], PROBLEM_SETS[lang])


def _language_split(seed: int, lang: str) -> list[str]:
    templates = ja_templates if lang == "ja" else en_templates
    docs = load_seed_paragraphs(lang)
    docs += _template_docs(seed, lang, templates.GENERATORS)
    docs += _problem_docs(seed, lang)
    sub_rng(seed, f"{lang}:order").shuffle(docs)
    return docs


def _synth_split(seed: int) -> list[str]:
    rng = sub_rng(seed, "synth")
    ja_seeds, en_seeds = load_seed_paragraphs("ja"), load_seed_paragraphs("en")
    twice = rng.sample(range(len(ja_seeds)), JA_SYNTH_EXTRA)  # indices rewritten in two styles
    docs: list[str] = []
    for index, paragraph in enumerate(ja_seeds):
        docs += rewrite(rng, paragraph, "ja", 2 if index in twice else 1)
    for paragraph in rng.sample(en_seeds, EN_SYNTH_SHARE):
        docs += rewrite(rng, paragraph, "en")
    rng.shuffle(docs)
    return docs


def build_debug_corpus(seed: int = 0) -> dict[str, list[str]]:
    """Return {"ja": [...docs], "en": [...docs], "synth": [...docs]}."""
    return {
        "ja": _language_split(seed, "ja"),
        "en": _language_split(seed, "en"),
        "synth": _synth_split(seed),
    }


def _jsonl(docs: Sequence[str]) -> bytes:
    lines = (json.dumps({"text": doc}, ensure_ascii=False) + "\n" for doc in docs)
    return "".join(lines).encode("utf-8")


def debug_prompts() -> list[str]:
    """The shipped Japanese chat prompts (``seeds/prompts_ja.txt``) the debug chain's DPO answers;
    none of them is an evaluation question."""
    text = (SEEDS_DIR / "prompts_ja.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_debug_corpus(out_dir: pathlib.Path, seed: int = 0) -> dict[str, pathlib.Path]:
    """Write out_dir/ja.jsonl, en.jsonl, synth.jsonl, one {"text": ...} JSON object per line, and
    out_dir/prompts.jsonl, one {"prompt": ...} per line."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, pathlib.Path] = {}
    for split, docs in build_debug_corpus(seed).items():
        path = out_dir / f"{split}.jsonl"
        path.write_bytes(_jsonl(docs))  # bytes: no platform newline translation
        paths[split] = path
    paths["prompts"] = out_dir / "prompts.jsonl"
    paths["prompts"].write_bytes("".join(json.dumps({"prompt": prompt}, ensure_ascii=False) + "\n"
                                         for prompt in debug_prompts()).encode("utf-8"))
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tanuki_pipelines.corpus.generate",
        description="Write the deterministic bilingual debug corpus (ja/en/synth JSONL).",
    )
    parser.add_argument("--out", required=True, type=pathlib.Path, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    paths = write_debug_corpus(args.out, seed=args.seed)
    elapsed = time.perf_counter() - started
    for path in paths.values():
        n_docs = sum(1 for _ in path.open(encoding="utf-8"))
        print(f"{path}\t{path.stat().st_size / 1024:.1f} KiB\t{n_docs} docs")
    print(f"generated in {elapsed:.2f}s (seed={args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
