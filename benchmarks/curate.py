"""Corpus curation at scale: ``tanuki curate``'s duplicate finding, speed and memory on a generated
corpus with a known set of planted near-duplicate pairs, against the old ``tanuki synth filter``.

The corpus: distinct documents of random Japanese text (``--chars`` characters each, a punctuation
mark about every 16, so most pass section 4's quality steps and reach the duplicate steps, as in a
real corpus; two of them share almost no character 5-gram), JSONL files of ``--file-docs``
documents, plus planted pairs:
a copy of a document with a few characters replaced at random positions, placed in another file.
Which planted pairs are true duplicates is decided by their exact Jaccard similarity of character
5-grams (≥ the threshold, 0.8), computed here, not by MinHash.

1. **Quality** (2 workers, the corpus at ``--docs``): recall of the true planted pairs (one of the
   two removed) ≥ 0.95; false removals (a distinct document removed) ≤ 0.5% of the distinct ones.
2. **Scaling**: documents/s of the whole run with 2 workers against 1 (same steps). Goal ≥ 1.6×.
3. **Memory**: the peak RSS of a worker process (sampled every 0.1 s) at ``--docs`` against a
   quarter of it. Goal ≤ 1.2×: the per-file and per-partition stages do not grow with the corpus
   (clustering runs in the driver; its bound is stated in ``tanuki_pipelines.curate.run``).
4. **Against the old filter**: documents/s of ``tanuki curate`` (2 workers) against ``tanuki synth
   filter`` as it was before it ran on the curation steps (``legacy_synth_filter.py``: one process,
   in-memory LSH) with the same checks on the same quarter-size corpus. Goal ≥ 2×.

    .venv/bin/python benchmarks/curate.py [--docs 1000000] [--rounds 1] [--sections quality,scaling,memory,versus] [--smoke]

``--sections`` runs some of them (section 4 alone needs only the quarter-size corpus).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchkit import Report, add_common_arguments, interleave, machine_facts

REPO = Path(__file__).resolve().parents[1]
ALPHABET = ("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
            "がぎぐげござじずぜぞだでどばびぶべぼぱぴぷぺぽ日本語文章東京大阪京都山川海空雨雪風花鳥月星森林")
STEPS = [{"step": "normalize"}, {"step": "length", "min_chars": 50}, {"step": "exact_dedup"},
         {"step": "near_dedup", "threshold": 0.8}]
"""Sections 1-3: what the corpus-scale machinery costs (the per-document checks are section 4's)."""
FILTER_STEPS = [{"step": "language", "languages": ["ja"], "threshold": 0.07}, {"step": "length", "min_chars": 50},
                {"step": "repeated_phrase", "max_chars": 100}, {"step": "punctuation", "max_words_per_mark": 40},
                {"step": "exact_dedup"}, {"step": "near_dedup", "threshold": 0.8}]
"""Section 4: what the old ``tanuki synth filter`` did with its default (Tanuki) filters, as curation steps."""


def shingles(text: str, width: int = 5) -> set[str]:
    return {text[i:i + width] for i in range(len(text) - width + 1)}


def write_corpus(root: Path, documents: int, chars: int, file_docs: int, planted_share: float,
                 seed: int = 0) -> list[tuple[str, str, float]]:
    """The corpus under ``root``; the planted pairs as (original id, copy id, exact Jaccard)."""
    rng = random.Random(seed)
    root.mkdir(parents=True)
    planted_count = int(documents * planted_share)
    distinct = documents - planted_count
    files: list[list[dict[str, str]]] = [[] for _ in range(max(1, -(-documents // file_docs)))]
    texts: list[str] = []
    for number in range(distinct):
        drawn = rng.choices(ALPHABET, k=chars)
        for position in range(rng.randrange(8, 20), chars, 16):  # clauses, so the quality steps pass most
            drawn[position] = "。" if position % 3 == 0 else "、"
        text = "".join(drawn)
        texts.append(text)
        files[number % len(files)].append({"id": f"d{number}", "text": text})
    planted = []
    for number in range(planted_count):
        original = rng.randrange(distinct)
        chars_list = list(texts[original])
        for _ in range(rng.randint(1, 4)):  # a few characters replaced, anywhere in the text
            chars_list[rng.randrange(len(chars_list))] = rng.choice(ALPHABET)
        copy = "".join(chars_list)
        a, b = shingles(texts[original]), shingles(copy)
        planted.append((f"d{original}", f"p{number}", len(a & b) / len(a | b)))
        target = (original % len(files) + 1 + rng.randrange(len(files) - 1)) % len(files) if len(files) > 1 else 0
        files[target].append({"id": f"p{number}", "text": copy})
    for index, rows in enumerate(files):
        with (root / f"part-{index:04d}.jsonl").open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return planted


def peak_worker_rss(process: subprocess.Popen, peaks: dict[int, int]) -> None:
    """Sample the RSS of the process's children (the pool's workers) until it exits."""
    while process.poll() is None:
        try:
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        except OSError:
            children = []
        for pid in [process.pid, *map(int, children)]:
            try:
                rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except OSError:
                continue
            peaks[pid] = max(peaks.get(pid, 0), rss)
        time.sleep(0.1)


def curate(corpus: Path, out: Path, workers: int, steps: list[dict[str, Any]] = STEPS) -> dict[str, Any]:
    """One ``tanuki curate`` run in its own process: seconds, documents, peak worker RSS."""
    recipe = out.with_suffix(".yaml")
    recipe.write_text(json.dumps({"sources": [{"name": "ja", "path": str(corpus)}], "steps": steps,
                                  "output": {"keep_removed": 1.0}}))
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "tanuki_pipelines.cli", "curate", "--config", str(recipe),
                                "--output-dir", str(out), "--cpus", str(workers)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    peaks: dict[int, int] = {}
    sampler = threading.Thread(target=peak_worker_rss, args=(process, peaks))
    sampler.start()
    _, err = process.communicate()
    sampler.join()
    seconds = time.monotonic() - started
    if process.returncode != 0:
        raise SystemExit(f"tanuki curate failed: {err[-2000:]}")
    stats = json.loads((out / "stats.json").read_text())
    workers_rss = [rss for pid, rss in peaks.items() if pid != process.pid] or [peaks.get(process.pid, 0)]
    return {"seconds": seconds, "documents": stats["documents_in"], "peak_worker_rss": max(workers_rss), "out": out}


def removed_ids(out: Path, corpus: Path) -> set[str]:
    """The ids of the removed documents (the sample keeps all of them: keep_removed 1.0)."""
    lines: dict[str, list[str]] = {}
    ids = set()
    for line in (out / "removed" / "sample.jsonl").read_text(encoding="utf-8").splitlines():
        where = json.loads(line)["where"]
        path, number = where.rsplit(":", 1)
        if path not in lines:
            lines[path] = Path(path).read_text(encoding="utf-8").splitlines()
        ids.add(json.loads(lines[path][int(number) - 1])["id"])
    return ids


def synth_filter(corpus: Path, out: Path) -> float:
    """Seconds of the old ``tanuki synth filter`` (``legacy_synth_filter.py``: its default filters,
    ``FILTER_STEPS``) on the corpus's files."""
    started = time.monotonic()
    subprocess.run([sys.executable, str(Path(__file__).with_name("legacy_synth_filter.py")), "--output-dir", str(out),
                    *[argument for path in sorted(corpus.glob("*.jsonl")) for argument in ("--input", str(path))]],
                   check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


SECTIONS = {"quality": ("recall of planted pairs", "false removals"), "scaling": ("2 workers ÷ 1 worker (docs/s)",),
            "memory": ("peak worker RSS, larger ÷ smaller corpus",), "versus": ("curate ÷ synth filter (docs/s)",)}
"""Section → the figures it promises."""


def main(argv: list[str] | None = None) -> int:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), rounds=1)
    parser.add_argument("--docs", type=int, default=1_000_000, help="documents of the larger corpus")
    parser.add_argument("--chars", type=int, default=300, help="characters per document")
    parser.add_argument("--file-docs", type=int, default=20_000, help="documents per JSONL file")
    parser.add_argument("--planted", type=float, default=0.01, help="share of documents that are planted copies")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: " + ", ".join(SECTIONS))
    args = parser.parse_args(argv)
    if args.smoke:
        args.docs, args.file_docs, args.rounds = 2_000, 250, 1
    sections = [section.strip() for section in args.sections.split(",") if section.strip()]
    if not sections or set(sections) - set(SECTIONS):
        parser.error(f"--sections: pick from {', '.join(SECTIONS)}")
    facts = machine_facts({"curate": "2 worker processes (or 1)", "synth filter": 1})
    report = Report("curate", [label for section in SECTIONS if section in sections for label in SECTIONS[section]],
                    facts)
    with tempfile.TemporaryDirectory(prefix="tanuki-curate-bench-") as temp:
        root = Path(temp)
        small, large = root / "small", root / "large"
        write_corpus(small, args.docs // 4, args.chars, args.file_docs, args.planted, seed=1)
        print(f"smaller corpus: {args.docs // 4:,} documents of {args.chars} characters", flush=True)
        if {"quality", "scaling", "memory"} & set(sections):
            planted = write_corpus(large, args.docs, args.chars, args.file_docs, args.planted, seed=2)
            print(f"larger corpus: {args.docs:,} documents, {len(planted):,} planted pairs", flush=True)

        if "quality" in sections:
            first = curate(large, root / "quality", 2)
            gone = removed_ids(first["out"], large)
            true_pairs = [(a, b) for a, b, jaccard in planted if jaccard >= 0.8]
            found = sum(1 for a, b in true_pairs if a in gone or b in gone)
            in_pairs = {a for a, _, _ in planted} | {b for _, b, _ in planted}
            false = sum(1 for identifier in gone if identifier not in in_pairs)
            distinct = args.docs - len(planted)
            report.value("recall of planted pairs", found / max(len(true_pairs), 1), f"({found} of {len(true_pairs)} "
                         "pairs with exact Jaccard ≥ 0.8)", goal="≥ 0.95")
            report.value("false removals", false / max(distinct, 1), f"({false} of {distinct:,} distinct documents)",
                         goal="≤ 0.005")

        runs = {"1 worker": [], "2 workers": []}  # type: dict[str, list[dict[str, Any]]]
        counter = iter(range(10**6))

        def side(workers: int, label: str) -> float:
            result = curate(large, root / f"speed-{next(counter)}", workers)
            runs[label].append(result)
            return result["documents"] / result["seconds"]

        if "scaling" in sections:
            speeds = interleave({"1 worker": lambda: side(1, "1 worker"), "2 workers": lambda: side(2, "2 workers")},
                                args.rounds)
            report.side("docs/s, 1 worker", speeds["1 worker"], "docs/s")
            report.side("docs/s, 2 workers", speeds["2 workers"], "docs/s")
            report.ratio("2 workers ÷ 1 worker (docs/s)", speeds["2 workers"], speeds["1 worker"], goal="≥ 1.6")

        if "memory" in sections:
            if not runs["2 workers"]:
                side(2, "2 workers")
            smaller = curate(small, root / "memory-small", 2)
            larger = max(run["peak_worker_rss"] for run in runs["2 workers"])
            report.value("peak worker RSS, smaller corpus", smaller["peak_worker_rss"] / 2**20, "MiB")
            report.value("peak worker RSS, larger corpus", larger / 2**20, "MiB")
            report.value("peak worker RSS, larger ÷ smaller corpus", larger / smaller["peak_worker_rss"], "×",
                         goal="≤ 1.2")

        if "versus" in sections:
            counter_filter = iter(range(10**6))
            versus = interleave({
                "curate": lambda: (args.docs // 4) / curate(small, root / f"vs-{next(counter_filter)}", 2,
                                                            FILTER_STEPS)["seconds"],
                "synth filter": lambda: (args.docs // 4) / synth_filter(small, root / f"filter-{next(counter_filter)}")},
                args.rounds)
            report.side("docs/s, curate (2 workers)", versus["curate"], "docs/s")
            report.side("docs/s, synth filter", versus["synth filter"], "docs/s")
            report.ratio("curate ÷ synth filter (docs/s)", versus["curate"], versus["synth filter"], goal="≥ 2")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
