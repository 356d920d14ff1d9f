"""Building a token store: one shard per input file, tokenized in parallel, resumable shard by shard.

``plan`` checks everything that can be checked before work (files exist and are readable, formats
are known, parquet files have the text column, the tokenizer loads and has an EOS) and lists the
shards. ``tokenize_shard`` streams one input file in batches through the HF tokenizer into a
Megatron ``IndexedDatasetBuilder``; it is a plain function of a JSON-able task, so the same code runs
in this process, in a process pool (``--cpus`` on one machine) or as Ray Data tasks (a KubeRay
cluster sharing the store's volume). A finished shard's ``.json`` is written last and durably; a
rerun skips those shards, so a SIGKILL loses at most the shards in flight. ``store.json`` is
written when every shard is there; nothing in it depends on the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import DataSource
from tanuki_pipelines.corpus_io import Problems, bad_record_policy, file_format, iter_file, source_files
from tanuki_pipelines.executors import run_local, run_ray
from tanuki_pipelines.publish import TMP_PREFIX, fault_point, fsync_dir, fsync_file, write_durable
from tanuki_pipelines.tokenize.config import TokenizeConfig
from tanuki_pipelines.tokenize.store import FORMAT, SHARDS_DIR, STATS_FILE, STORE_FILE, TOKENIZER_DIR
from tanuki_pipelines.tokenizer.special import load_tokenizer, require_eos, special_ids
from tanuki_pipelines.tokenizer.train import HF_TOKENIZER_FILES, copy_tokenizer_files

PLAN_FILE = "plan.json"
BYTES_PER_WORKER = 32 * 2**20
"""Input a spawned worker must have to be worth its start-up (without ``workers`` in the recipe)."""
KNOWN_SUFFIXES = (".jsonl", ".json", ".parquet", ".txt", ".text", ".md")


def token_dtype(vocabulary: int) -> str:
    """The store's token type, as Megatron's preprocessing chooses it (uint16 below 65,500 ids)."""
    import numpy as np

    from tanuki_pipelines.tokenize.megatron import optimal_dtype

    return np.dtype(optimal_dtype(vocabulary)).name


def tokenizer_fingerprint(directory: Path) -> str:
    """A digest of the files that decide the ids (a changed tokenizer is another store)."""
    digest = hashlib.sha256()
    for name in HF_TOKENIZER_FILES:
        if (directory / name).is_file():
            digest.update(name.encode() + (directory / name).read_bytes())
    return digest.hexdigest()[:16]


def _check_file(source: DataSource, path: Path) -> None:
    """What can be known of a file before reading it all: its format, and a parquet file's columns."""
    name = path.name.lower()
    stem = name[:-len(Path(name).suffix)] if name.endswith((".gz", ".zst")) else name
    if source.format == "auto" and not stem.endswith(KNOWN_SUFFIXES):
        raise BadInputError(f"data source {source.name!r}: format: cannot tell the format of {path} from its name "
                            f"(known: {', '.join(KNOWN_SUFFIXES)}, optionally .gz/.zst); set format: jsonl, "
                            "parquet or text")
    if file_format(path, source.format)[0] == "parquet":
        import pyarrow.parquet as pq

        try:
            columns = pq.read_schema(path).names
        except Exception as exc:
            raise BadInputError(f"{path}: not a readable parquet file: {exc}") from None
        if source.text_field not in columns:
            raise BadInputError(f"data source {source.name!r}: text_field: {path} has no column "
                                f"{source.text_field!r} (columns: {', '.join(columns)})")


def plan(config: TokenizeConfig, store: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The shard tasks (in store order) and the plan's description; every input problem found now."""
    if config.tokenizer is None:
        raise BadInputError("tokenizer: not set (an HF tokenizer directory, e.g. what `tanuki tokenizer` wrote)")
    tokenizer = load_tokenizer(config.tokenizer, "tokenizer")
    eos = require_eos(special_ids(tokenizer), "tokenizer", config.tokenizer, "every document ends with it")
    dtype = token_dtype(len(tokenizer))
    tasks, inputs = [], []
    for source in config.sources:
        for number, path in enumerate(source_files(source)):
            _check_file(source, path)
            stat = path.stat()
            prefix = f"{SHARDS_DIR}/{source.name}/{number:05d}"
            tasks.append({"source": source.model_dump_json(), "file": str(path), "prefix": prefix, "store": str(store),
                          "tokenizer": str(config.tokenizer), "dtype": dtype, "eos": eos,
                          "batch_documents": config.batch_documents, "bytes": stat.st_size})
            inputs.append([source.name, str(path), stat.st_size, stat.st_mtime_ns])
    description = {"format": FORMAT, "dtype": dtype, "eos_id": eos, "vocabulary": len(tokenizer),
                   "tokenizer": str(config.tokenizer), "tokenizer_fingerprint": tokenizer_fingerprint(config.tokenizer),
                   "sources": [s.model_dump(mode="json", exclude={"weight", "path"}) for s in config.sources],
                   "inputs": inputs}
    return tasks, description


def plan_digest(description: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


# ---- one shard (runs wherever the executor puts it) ---------------------------------------------

_TOKENIZERS: dict[str, Any] = {}


def _encoder(directory: str) -> Callable[[list[str]], list[list[int]]]:
    """Batch encoding without special tokens: the Rust tokenizer's own batch call when there is one."""
    if directory not in _TOKENIZERS:
        _TOKENIZERS[directory] = load_tokenizer(Path(directory), "tokenizer")
    tokenizer = _TOKENIZERS[directory]
    if getattr(tokenizer, "is_fast", False):
        backend = tokenizer.backend_tokenizer
        return lambda texts: [encoding.ids for encoding in backend.encode_batch(texts, add_special_tokens=False)]
    return lambda texts: tokenizer(texts, add_special_tokens=False)["input_ids"]


def shard_paths(task: dict[str, Any]) -> dict[str, Path]:
    prefix = Path(task["store"]) / task["prefix"]
    return {"bin": prefix.with_name(prefix.name + ".bin"), "idx": prefix.with_name(prefix.name + ".idx"),
            "done": prefix.with_name(prefix.name + ".json"),
            "tmp_bin": prefix.with_name(f"{TMP_PREFIX}{prefix.name}.bin"),
            "tmp_idx": prefix.with_name(f"{TMP_PREFIX}{prefix.name}.idx")}


def tokenize_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Tokenize one input file into its shard (a no-op returning the statistics when it is done)."""
    import numpy as np

    from tanuki_pipelines.tokenize.megatron import IndexedDatasetBuilder

    paths = shard_paths(task)
    if paths["done"].is_file():
        return json.loads(paths["done"].read_text())
    started = time.monotonic()
    paths["bin"].parent.mkdir(parents=True, exist_ok=True)
    source = DataSource.model_validate_json(task["source"])
    dtype = np.dtype(task["dtype"])
    encode, eos = _encoder(task["tokenizer"]), int(task["eos"])
    problems = Problems()
    builder = IndexedDatasetBuilder(str(paths["tmp_bin"]), dtype=dtype.type)
    counts = {"documents": 0, "tokens": 0, "characters": 0}

    def flush(texts: list[str]) -> None:
        for ids in encode(texts):
            ids.append(eos)
            builder.add_document(ids, [len(ids)])  # one document of one sequence, as preprocess_data writes
            counts["tokens"] += len(ids)
        counts["documents"] += len(texts)
        counts["characters"] += sum(map(len, texts))

    batch: list[str] = []
    try:
        for document in iter_file(Path(task["file"]), source, bad_record_policy(source, problems)):
            batch.append(document.text)
            if len(batch) == task["batch_documents"]:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
    except BaseException:
        builder.data_file.close()
        paths["tmp_bin"].unlink(missing_ok=True)
        raise
    builder.finalize(str(paths["tmp_idx"]))
    for name in ("tmp_bin", "tmp_idx"):
        fsync_file(paths[name])
    os.replace(paths["tmp_bin"], paths["bin"])
    os.replace(paths["tmp_idx"], paths["idx"])
    fsync_dir(paths["bin"].parent)
    fault_point("tokenize:before-shard-marker")
    stats = {"prefix": task["prefix"], "file": task["file"], "source": source.name, **counts, "bytes": task["bytes"],
             "bad_records": problems.as_dict(), "seconds": round(time.monotonic() - started, 3)}
    write_durable(paths["done"], json.dumps(stats, ensure_ascii=False) + "\n")
    fault_point("tokenize:after-shard")
    return stats


def _worker_environment(rayon_threads: str) -> None:
    os.environ["RAYON_NUM_THREADS"] = rayon_threads  # before the tokenizer library loads in this worker
    os.environ["TOKENIZERS_PARALLELISM"] = "true"


class Progress:
    """Documents, tokens, bytes/s and ETA as shards finish (bytes of input files are the measure of work)."""

    def __init__(self, tasks: list[dict[str, Any]], done: int, label: str = "tokenize") -> None:
        from tanuki_pipelines.outputs import format_progress

        self.format_progress, self.label = format_progress, label
        self.total_shards, self.done = len(tasks) + done, done
        self.total_bytes = sum(task["bytes"] for task in tasks)
        self.bytes = self.tokens = self.documents = 0
        self.started = time.monotonic()

    def __call__(self, stats: dict[str, Any]) -> None:
        self.done += 1
        self.bytes += stats["bytes"]
        self.tokens += stats["tokens"]
        self.documents += stats["documents"]
        seconds = max(time.monotonic() - self.started, 1e-9)
        rate = self.bytes / seconds
        eta = (self.total_bytes - self.bytes) / rate if rate else 0.0
        print(f"[tanuki {self.label}] {stats['prefix']} ({self.done}/{self.total_shards}): {stats['documents']:,} "
              f"documents, {stats['tokens']:,} tokens; {self.tokens / seconds:,.0f} tokens/s, {rate / 1e6:.1f} MB/s, "
              f"ETA {eta:.0f} s", flush=True)
        print(self.format_progress(self.done, self.total_shards, tokens=self.tokens), flush=True)


def local_workers(asked: int | None, cpus: int, pending: list[dict[str, Any]]) -> int:
    """Processes for the pending shards: the recipe's number, else one per core, but never more than
    the shards, nor than one per ``BYTES_PER_WORKER`` of input (a spawned worker takes seconds to
    import its libraries, and the tokenizer already uses every core within one process)."""
    if asked is not None:
        return max(1, min(asked, len(pending)))
    return max(1, min(cpus, len(pending), sum(task["bytes"] for task in pending) // BYTES_PER_WORKER))


def build_store(config: TokenizeConfig, store: Path, cpus: int, ray_address: str | None = None,
                label: str = "tokenize") -> dict[str, Any]:
    """Build (or finish) the store in ``store``; returns ``store.json``'s content."""
    store = store.resolve()
    tasks, description = plan(config, store)
    digest = plan_digest(description)
    store.mkdir(parents=True, exist_ok=True)
    plan_file = store / PLAN_FILE
    if plan_file.is_file() and json.loads(plan_file.read_text()).get("digest") != digest:
        raise BadInputError(f"{store}: holds a token store of other inputs or another tokenizer; use another "
                            "directory or remove it")
    write_durable(plan_file, json.dumps({"digest": digest, **description}, indent=2, ensure_ascii=False) + "\n")
    for stale in store.glob(f"{SHARDS_DIR}/*/{TMP_PREFIX}*"):  # a shard in flight when the last run died
        stale.unlink(missing_ok=True)
    pending = [task for task in tasks if not shard_paths(task)["done"].is_file()]
    print(f"[tanuki {label}] {len(tasks)} shards of {len(config.sources)} sources "
          f"({sum(t['bytes'] for t in tasks) / 1e6:,.1f} MB); {len(pending)} to tokenize, tokens as {description['dtype']}",
          flush=True)
    started = time.monotonic()
    progress = Progress(pending, len(tasks) - len(pending), label)
    if pending and ray_address:
        run_ray(tokenize_shard, pending, None if ray_address == "local" else ray_address, progress)
    elif pending:
        # the tokenizer's own threads share the cores with the other workers
        workers = local_workers(config.workers, cpus, pending)
        rayon = os.environ.get("RAYON_NUM_THREADS") or str(max(1, cpus // workers))
        run_local(tokenize_shard, pending, workers, progress, _worker_environment, (rayon,))
    shards = [json.loads(shard_paths(task)["done"].read_text()) for task in tasks]
    return finish(store, description, shards, time.monotonic() - started)


def keep_tokenizer(source: Path, target: Path) -> None:
    """The store's own copy of the tokenizer that made its ids, so pretraining from the store alone
    uses the right one (its source directory may be gone or changed by then)."""
    from tanuki_pipelines.publish import staging

    with staging(target, "store-tokenizer") as staged:
        copy_tokenizer_files(source, staged)


def finish(store: Path, description: dict[str, Any], shards: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """``stats.json`` and, last, ``store.json``; a source without a single token is an error."""
    sources: dict[str, Any] = {}
    problems: dict[str, Problems] = {}
    for shard in shards:
        entry = sources.setdefault(shard["source"], {"shards": [], "documents": 0, "tokens": 0, "characters": 0})
        entry["shards"].append({"prefix": shard["prefix"], "file": shard["file"], "documents": shard["documents"],
                                "tokens": shard["tokens"]})
        for key in ("documents", "tokens", "characters"):
            entry[key] += shard[key]
        problems.setdefault(shard["source"], Problems()).merge(shard["bad_records"])
    empty = [name for name, entry in sources.items() if not entry["documents"]]
    if empty:
        raise BadInputError(f"data source {empty[0]!r}: corpus is empty: no document in "
                            f"{', '.join(s['file'] for s in sources[empty[0]]['shards'])}")
    index = {key: description[key] for key in ("format", "dtype", "eos_id", "vocabulary", "tokenizer",
                                               "tokenizer_fingerprint")}
    index["sources"] = {name: {"shards": entry["shards"], "documents": entry["documents"], "tokens": entry["tokens"]}
                        for name, entry in sources.items()}
    stats = {"sources": {name: {"documents": entry["documents"], "tokens": entry["tokens"],
                                "characters_per_token": round(entry["characters"] / max(entry["tokens"], 1), 4),
                                "bad_records": problems[name].as_dict(),
                                "shards": [{k: s[k] for k in ("prefix", "file", "documents", "tokens", "bytes",
                                                              "seconds")} for s in shards if s["source"] == name]}
                         for name, entry in sources.items()},
             "tokens": sum(entry["tokens"] for entry in sources.values()),
             "bytes": sum(shard["bytes"] for shard in shards), "seconds_this_run": round(seconds, 2)}
    write_durable(store / STATS_FILE, json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    keep_tokenizer(Path(description["tokenizer"]), store / TOKENIZER_DIR)
    write_durable(store / STORE_FILE, json.dumps(index, indent=2, ensure_ascii=False) + "\n")
    return index
