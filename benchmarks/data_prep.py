"""Pretraining data preparation at corpus scale: the token store's speed and memory against plain
loops doing the same work, in one run.

Corpora are generated from the shipped Japanese and English documents (each copy prefixed with its
number, so no two documents are equal), 3:2 by documents, as JSONL files of ~32 MB each, at two
sizes (``--sizes``, default 0.25 and 1 GB). The tokenizer is the shipped debug recipe's (vocabulary
4,000, SentencePiece unigram exported to an HF fast tokenizer). Every build and loop runs in its
own process, whose peak RSS is that of its whole process tree (sampled every 0.1 s).

1. **Memory**: ``tanuki tokenize`` (default: one worker per core) on both sizes. Goal: the larger
   build's peak RSS ≤ 1.2× the smaller's and ≤ 2 GB: memory does not grow with the corpus.
2. **Speed**: the default build against a bare streaming loop over the same HF tokenizer using all
   cores (the Rust tokenizer's batch call on 1,000 documents at a time, token arrays appended to a
   file: the least work that turns the corpus into tokens on disk). Goal ≥ 0.9×.
3. **Scaling**: each worker held to one tokenizer thread (``RAYON_NUM_THREADS=1``), 2 workers
   against 1 worker on the smaller corpus, over the build itself (``stats.json``: from the plan
   to the last shard, spawning the pool included; the command's own start-up is a constant a
   corpus-scale run does not notice): what says the build will scale across a Ray cluster. Goal ≥ 1.6×.
   Beside it the machine's own ceiling: two bare loops (one thread each, disjoint files) at once
   against one; a VM whose two vCPUs do not give two processes 1.6× cannot show more.
4. **Loader**: the plain PyTorch training loop of ``pretrain_throughput.py`` (debug model, same
   samples) fed from the store against today's memory-mapped ``.npy`` of the same blocks
   (``legacy_packing.py``), sides taking turns. Goal: no measurable step-time increase (≥ 0.97×).

    .venv/bin/python benchmarks/data_prep.py [--sizes 0.25 1] [--rounds 1] [--smoke]
        [--only memory speed scaling loader]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from benchkit import Report, add_common_arguments, interleave, machine_facts

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "pipelines" / "recipes" / "debug" / "corpus"
FILE_BYTES = 32 * 2**20
SECTIONS = ("memory", "speed", "scaling", "loader")


def write_corpus(root: Path, size_bytes: int, file_bytes: int = FILE_BYTES) -> Path:
    """JSONL files of ~``file_bytes`` with numbered copies of the shipped documents, ja:en = 3:2."""
    texts = {name: [json.loads(line)["text"] for line in (CORPUS / f"{name}.jsonl").read_text().splitlines()
                    if line.strip()] for name in ("ja", "en")}
    root.mkdir(parents=True)
    written, number, part = 0, 0, 0
    handle = (root / f"part-{part:04d}.jsonl").open("w", encoding="utf-8")
    in_file = 0
    while written < size_bytes:
        language = "ja" if number % 5 < 3 else "en"
        pool = texts[language]
        line = json.dumps({"text": f"{number}. {pool[number % len(pool)]}"}, ensure_ascii=False) + "\n"
        data = line.encode()
        handle.write(line)
        written, in_file, number = written + len(data), in_file + len(data), number + 1
        if in_file >= file_bytes and written < size_bytes:
            handle.close()
            part, in_file = part + 1, 0
            handle = (root / f"part-{part:04d}.jsonl").open("w", encoding="utf-8")
    handle.close()
    return root


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    import psutil

    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(seconds, peak RSS of the process tree in bytes, stdout) of a command."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], tree_rss(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.monotonic() - started
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:5]} failed ({process.returncode}):\n{err[-3000:]}")
    return seconds, peak[0], out


def build(corpus: Path, tokenizer: Path, out: Path, cpus: int, workers: int | None = None,
          env: dict[str, str] | None = None) -> dict[str, float]:
    """``tanuki tokenize`` of one corpus: tokens/s over the whole command (start-up included)."""
    recipe = out.with_suffix(".yaml")
    recipe.write_text(json.dumps({"sources": [{"name": "corpus", "path": str(corpus)}], "tokenizer": str(tokenizer),
                                  **({"workers": workers} if workers else {})}))
    seconds, peak, _ = run_measured([sys.executable, "-m", "tanuki_pipelines.cli", "tokenize", "--config", str(recipe),
                                     "--output-dir", str(out), "--cpus", str(cpus)], env)
    tokens = json.loads((out / "outputs.json").read_text())["token_count"]
    building = json.loads((out / "stats.json").read_text())["seconds_this_run"]
    import shutil

    shutil.rmtree(out)
    return {"tokens_per_s": tokens / seconds, "peak_rss": peak, "tokens": tokens, "seconds": seconds,
            "build_tokens_per_s": tokens / building}


BARE_LOOP = """
import json, sys, time
from pathlib import Path
import numpy as np
from transformers import PreTrainedTokenizerFast
corpus, tokenizer_dir, out, part, parts = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
backend, eos = tokenizer.backend_tokenizer, tokenizer.eos_token_id
tokens = 0
with open(out, "wb") as sink:
    for path in sorted(corpus.glob("*.jsonl"))[part::parts]:
        with path.open(encoding="utf-8") as handle:
            batch = []
            for line in handle:
                batch.append(json.loads(line)["text"])
                if len(batch) == 1000:
                    for encoding in backend.encode_batch(batch, add_special_tokens=False):
                        ids = np.asarray(encoding.ids + [eos], dtype=np.uint16)
                        sink.write(ids.tobytes())
                        tokens += len(ids)
                    batch = []
            for encoding in backend.encode_batch(batch, add_special_tokens=False):
                ids = np.asarray(encoding.ids + [eos], dtype=np.uint16)
                sink.write(ids.tobytes())
                tokens += len(ids)
print(tokens)
"""


def bare_loop(corpus: Path, tokenizer: Path, out: Path, part: int = 0, parts: int = 1,
              env: dict[str, str] | None = None) -> dict[str, float]:
    """The bare loop over every ``parts``-th file of the corpus from the ``part``-th."""
    seconds, peak, stdout = run_measured([sys.executable, "-c", BARE_LOOP, str(corpus), str(tokenizer), str(out),
                                          str(part), str(parts)], env)
    out.unlink()
    tokens = int(stdout.strip().splitlines()[-1])
    return {"tokens_per_s": tokens / seconds, "peak_rss": peak, "tokens": tokens, "seconds": seconds}


def concurrent_bare_loops(corpus: Path, tokenizer: Path, root: Path, processes: int) -> dict[str, float]:
    """``processes`` bare loops at once, one tokenizer thread each, over disjoint files: the most two
    independent tokenizing processes get from this machine, whatever tanuki does around them."""
    from concurrent.futures import ThreadPoolExecutor

    single = {"RAYON_NUM_THREADS": "1"}
    started = time.monotonic()
    with ThreadPoolExecutor(processes) as pool:
        results = list(pool.map(lambda part: bare_loop(corpus, tokenizer, root / f"bare-{part}.bin", part, processes,
                                                       single), range(processes)))
    seconds = time.monotonic() - started
    return {"tokens_per_s": sum(r["tokens"] for r in results) / seconds, "seconds": seconds}


def build_tokenizer(root: Path) -> Path:
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.recipes import shipped_recipe
    from tanuki_pipelines.tokenizer.config import TokenizerConfig
    from tanuki_pipelines.tokenizer.train import build_tokenizer as train

    train(load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer")), root / "tokenizer")
    return root / "tokenizer"


def loader_sides(root: Path, tokenizer: Path, steps: int) -> dict[str, object]:
    """Two plain training loops on the same samples: blocks from the store, blocks from a ``.npy``."""
    import numpy as np

    from legacy_packing import prepare_npy
    from pretrain_throughput import run_baseline
    from tanuki_pipelines.config import load_recipe
    from tanuki_pipelines.pretrain.config import PretrainConfig
    from tanuki_pipelines.pretrain.data import open_packed, prepare_store
    from tanuki_pipelines.recipes import shipped_recipe

    sets = [f"train.steps={steps}", "train.micro_batch_size=8", "train.grad_accum_steps=1",
            f"tokenizer.path={tokenizer}", "tokenizer.train=null"]
    config = load_recipe(PretrainConfig, shipped_recipe("debug", "pretrain"), sets)
    store = prepare_store(config.data.sources, tokenizer, root / "loader", cpus=len(os.sched_getaffinity(0)))
    packed = open_packed(store, config.data.sources, config.train.seq_len)
    legacy = [np.load(prepare_npy(source.path, tokenizer, config.train.seq_len, root / f"{source.name}.npy"),
                      mmap_mode="r") for source in config.data.sources]
    assert all(len(a) == len(b) and (a[len(a) - 1] == b[len(b) - 1]).all() for a, b in zip(packed, legacy, strict=True))
    threads = len(os.sched_getaffinity(0))
    return {"store": lambda: run_baseline(config, packed, threads), "npy": lambda: run_baseline(config, legacy, threads)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, rounds=1)
    parser.add_argument("--sizes", type=float, nargs=2, default=[0.25, 1.0], help="corpus sizes in GB (small, large)")
    parser.add_argument("--loader-steps", type=int, default=40)
    parser.add_argument("--loader-rounds", type=int, default=5)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="measure only these parts (default: all)")
    args = parser.parse_args()
    file_bytes = FILE_BYTES
    if args.smoke:
        args.sizes, args.loader_steps, args.loader_rounds, file_bytes = [0.002, 0.008], 8, 1, 2**20
    cpus = len(os.sched_getaffinity(0))
    facts = machine_facts({"tanuki tokenize (default)": f"{cpus} workers, tokenizer threads shared",
                           "bare loop": f"1 process, tokenizer's own threads ({cpus})",
                           "scaling sides": "1 tokenizer thread per worker",
                           "training loops": cpus})
    small_gb, large_gb = args.sizes
    promised = {"memory": [f"peak RSS, build of {small_gb:g} GB", f"peak RSS, build of {large_gb:g} GB",
                           "peak RSS large ÷ small"],
                "speed": [f"tanuki tokenize, {large_gb:g} GB", f"bare streaming loop, {large_gb:g} GB",
                          "tanuki ÷ bare loop"],
                "scaling": ["2 workers ÷ 1 worker (1 thread each)", "ceiling: 2 bare loops at once ÷ 1 (1 thread each)"],
                "loader": ["loader: store ÷ .npy"]}
    report = Report("data_prep", [name for section in args.only for name in promised[section]], facts)
    with tempfile.TemporaryDirectory(prefix="tanuki-data-bench-", dir=os.environ.get("TMPDIR")) as tmp:
        root = Path(tmp)
        tokenizer = build_tokenizer(root)
        small = write_corpus(root / "small", int(small_gb * 1e9), file_bytes)
        large = write_corpus(root / "large", int(large_gb * 1e9), file_bytes)
        print(f"corpora: {small_gb:g} GB in {len(list(small.iterdir()))} files, {large_gb:g} GB in "
              f"{len(list(large.iterdir()))} files", flush=True)

        counter = iter(range(10**6))
        if "memory" in args.only or "speed" in args.only:
            memory_and_speed(report, small, large, tokenizer, root, cpus, args.rounds, args.sizes, counter)
        if "scaling" in args.only:
            scaling(report, small, tokenizer, root, cpus, args.rounds, counter)
        if "loader" in args.only:
            loaders = interleave(loader_sides(root, tokenizer, args.loader_steps), args.loader_rounds)
            report.side("training loop fed by the store", loaders["store"], "tokens/s")
            report.side("training loop fed by the .npy", loaders["npy"], "tokens/s")
            report.ratio("loader: store ÷ .npy", loaders["store"], loaders["npy"], "≥ 0.97× (no measurable cost)")
    return report.finish()


def memory_and_speed(report: Report, small: Path, large: Path, tokenizer: Path, root: Path, cpus: int, rounds: int,
                     sizes: list[float], counter: Iterator[int]) -> None:
    small_gb, large_gb = sizes
    builds = interleave({"small": lambda: build(small, tokenizer, root / f"s{next(counter)}", cpus),
                         "large": lambda: build(large, tokenizer, root / f"l{next(counter)}", cpus),
                         "bare": lambda: bare_loop(large, tokenizer, root / "bare.bin")}, rounds,
                        on_value=lambda name, r, v: print(f"    round {r + 1}: {name}: {v['tokens_per_s']:,.0f} "
                                                          f"tokens/s, peak RSS {v['peak_rss'] / 2**20:,.0f} MiB, "
                                                          f"{v['seconds']:.0f} s", flush=True))
    small_rss = [b["peak_rss"] / 2**20 for b in builds["small"]]
    large_rss = [b["peak_rss"] / 2**20 for b in builds["large"]]
    report.side(f"peak RSS, build of {small_gb:g} GB", small_rss, "MiB")
    report.side(f"peak RSS, build of {large_gb:g} GB", large_rss, "MiB (goal ≤ 2048)")
    report.ratio("peak RSS large ÷ small", large_rss, small_rss, "≤ 1.2×", higher_is_better=False)
    tanuki = [b["tokens_per_s"] for b in builds["large"]]
    bare = [b["tokens_per_s"] for b in builds["bare"]]
    report.side(f"tanuki tokenize, {large_gb:g} GB", tanuki, "tokens/s (whole command)")
    report.side(f"bare streaming loop, {large_gb:g} GB", bare, "tokens/s (whole command)")
    report.ratio("tanuki ÷ bare loop", tanuki, bare, "≥ 0.9×")


def scaling(report: Report, small: Path, tokenizer: Path, root: Path, cpus: int, rounds: int,
            counter: Iterator[int]) -> None:
    single = {"RAYON_NUM_THREADS": "1"}
    sides = interleave({"1 worker": lambda: build(small, tokenizer, root / f"w{next(counter)}", cpus, 1, single),
                        "2 workers": lambda: build(small, tokenizer, root / f"w{next(counter)}", cpus, 2, single)},
                       rounds)
    one = [b["build_tokens_per_s"] for b in sides["1 worker"]]
    two = [b["build_tokens_per_s"] for b in sides["2 workers"]]
    report.side("1 worker, 1 thread", one, "tokens/s (building: no process start-up)")
    report.side("2 workers, 1 thread each", two, "tokens/s (building: spawning the workers included)")
    report.ratio("2 workers ÷ 1 worker, whole command", [b["tokens_per_s"] for b in sides["2 workers"]],
                 [b["tokens_per_s"] for b in sides["1 worker"]])
    report.ratio("2 workers ÷ 1 worker (1 thread each)", two, one, "≥ 1.6×, or the machine's ceiling below")
    ceiling = interleave({"1 loop": lambda: concurrent_bare_loops(small, tokenizer, root, 1),
                          "2 loops": lambda: concurrent_bare_loops(small, tokenizer, root, 2)}, rounds)
    report.ratio("ceiling: 2 bare loops at once ÷ 1 (1 thread each)",
                 [b["tokens_per_s"] for b in ceiling["2 loops"]], [b["tokens_per_s"] for b in ceiling["1 loop"]],
                 "what two processes get here at most (whole commands)")


if __name__ == "__main__":
    sys.exit(main())
