"""``tanuki curate``'s stages. Their state lives in files under ``OUTPUT/work``, so any number of
workers can run the per-file and per-partition stages with memory bounded by one file or one
partition, and a killed run resumes at the first task without its ``.done.json``:

1. **documents** (one task per input file): the per-document steps in recipe order; what survives
   is written to ``work/docs/<file>.jsonl.zst`` and its duplicate keys (the exact key, the MinHash
   band keys) to ``work/keys/<partition>/<file>.bin``, a partition by key.
2. **pairs** (one task per key partition): the partition's keys sorted; documents sharing a key are
   joined to the first of them (the smallest uid) as duplicate edges, ``work/pairs/<partition>.bin``.
3. **clusters** (one task): the connected components of all edges (scipy); each keeps its smallest
   uid (input file index, then document position: a rule that does not depend on the worker
   count), the rest are removed. Its memory grows with the number of duplicate edges (24 bytes each
   on disk, about 5× that in the sort and the graph), not with the corpus.
4. **write** (one task per input file): the file's survivors minus the removed duplicates, as
   output shards ``data/<source>/<file>-<k>.<format>`` keeping every input field (a TokenizeJob or
   PretrainJob reads one source's directory through ``sourcesFrom[].subset``).

A document's uid is ``file index << 40 | position in its file``; the file index is its place in the
sources' files in recipe order.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tanuki_common.errors import BadInputError
from tanuki_pipelines.corpus_io import Problems, bad_record_policy, iter_file, source_files
from tanuki_pipelines.curate.config import CurateConfig, ExactDedup, NearDedup
from tanuki_pipelines.curate.minhash import EXACT, NEAR, BandKeys, exact_key
from tanuki_pipelines.curate.steps import document_steps, run_steps
from tanuki_pipelines.executors import run_local, run_ray
from tanuki_pipelines.publish import TMP_PREFIX, fault_point, publish_file, write_durable

WORK, DATA, REMOVED = "work", "data", "removed"
STATS_FILE, PLAN_FILE = "stats.json", "plan.json"
POSITION_BITS = 40
PARTITION_BYTES = 64 * 2**20
"""Input bytes per key partition: a pairs task holds about a tenth of that in keys."""
MAX_PARTITIONS = 1024
KEY = np.dtype([("key", "<u8"), ("uid", "<u8"), ("kind", "u1")])
PAIR = np.dtype([("a", "<u8"), ("b", "<u8"), ("kind", "u1")])
REMOVED_DTYPE = np.dtype([("uid", "<u8"), ("keeper", "<u8"), ("kind", "u1")])
FLUSH_KEYS = 200_000
"""Keys a documents task buffers before appending them to its partition files."""


def uid_of(file_index: int, position: int) -> int:
    return (file_index << POSITION_BITS) | position


def where_of(uid: int) -> tuple[int, int]:
    return uid >> POSITION_BITS, uid & ((1 << POSITION_BITS) - 1)


# ---- plan -------------------------------------------------------------------------------------------

def plan(config: CurateConfig, out: Path) -> dict[str, Any]:
    """Every input file as a task, the key partitions, and a digest of inputs and recipe."""
    files: list[dict[str, Any]] = []
    for source in config.sources:
        for path in source_files(source):
            files.append({"index": len(files), "source": source.name, "path": str(path),
                          "bytes": path.stat().st_size})
    total = sum(file["bytes"] for file in files)
    partitions = max(1, min(MAX_PARTITIONS, -(-total // PARTITION_BYTES)))
    recipe = config.model_dump(mode="json", exclude={"workers"})
    digest = hashlib.sha256(json.dumps({"recipe": recipe, "files": files, "partitions": partitions},
                                       sort_keys=True).encode()).hexdigest()[:16]
    return {"digest": digest, "files": files, "partitions": partitions, "bytes": total,
            "recipe": recipe, "out": str(out)}


def _done(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _sampled(uid: int, seed: int, fraction: float) -> bool:
    """Whether a removed document goes to the sample (the same for any worker count)."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{uid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < fraction


# ---- stage 1: documents -----------------------------------------------------------------------------

def _zstd_writer(path: Path) -> Any:
    import zstandard

    return io.TextIOWrapper(zstandard.ZstdCompressor(level=3).stream_writer(open(path, "wb")), encoding="utf-8")


def _zstd_lines(path: Path) -> Iterator[str]:
    import zstandard

    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as stream:
        yield from io.TextIOWrapper(stream, encoding="utf-8")


class _KeyFiles:
    """A documents task's keys, buffered, then appended to one file per partition."""

    def __init__(self, work: Path, index: int, partitions: int) -> None:
        self.paths = [work / "keys" / f"{p:04d}" / f"{TMP_PREFIX}{index:05d}.bin" for p in range(partitions)]
        for path in self.paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        self.partitions = partitions
        self.buffer: list[tuple[int, int, int]] = []

    def add(self, key: int, uid: int, kind: int) -> None:
        self.buffer.append((key, uid, kind))
        if len(self.buffer) >= FLUSH_KEYS:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        keys = np.array(self.buffer, dtype=KEY)
        self.buffer = []
        parts = keys["key"] % np.uint64(self.partitions)
        for partition in np.unique(parts):
            with open(self.paths[int(partition)], "ab") as handle:
                keys[parts == partition].tofile(handle)

    def publish(self) -> None:
        self.flush()
        for path in self.paths:
            publish_file(path, path.with_name(path.name[len(TMP_PREFIX):]))


def documents_task(task: dict[str, Any]) -> dict[str, Any]:
    """Stage 1 for one input file (see the module docstring); its stats."""
    config = CurateConfig.model_validate(task["recipe"])
    work, index = Path(task["work"]), task["index"]
    source = next(s for s in config.sources if s.name == task["source"])
    steps = document_steps(config.steps)
    exact = any(isinstance(step, ExactDedup) for step in config.steps)
    near = next((step for step in config.steps if isinstance(step, NearDedup)), None)
    band_keys = BandKeys(near) if near is not None else None
    keys = _KeyFiles(work, index, task["partitions"])
    docs_path = work / "docs" / f"{index:05d}.jsonl.zst"
    staged_docs = docs_path.with_name(f"{TMP_PREFIX}{docs_path.name}")
    removed_path = work / "removed" / f"{index:05d}.jsonl"
    staged_removed = removed_path.with_name(f"{TMP_PREFIX}{removed_path.name}")
    removed: Counter[str] = Counter()
    problems = Problems()
    documents = kept = kept_bytes = 0
    started = time.monotonic()
    with _zstd_writer(staged_docs) as docs, open(staged_removed, "w", encoding="utf-8") as sample:
        for position, document in enumerate(iter_file(Path(task["path"]), source,
                                                      bad_record_policy(source, problems, "error"))):
            documents += 1
            uid = uid_of(index, position)
            text, why = run_steps(document.text, steps)
            if text is None:
                assert why is not None
                removed[why[0]] += 1
                if _sampled(uid, config.seed, config.output.keep_removed):
                    sample.write(json.dumps({"where": document.where, "step": why[0], "reason": why[1],
                                             "text": document.text}, ensure_ascii=False) + "\n")
                continue
            kept += 1
            kept_bytes += len(text.encode("utf-8"))
            docs.write(json.dumps({"uid": uid, "where": document.where, "text": text, "record": document.record},
                                  ensure_ascii=False) + "\n")
            if exact:
                keys.add(exact_key(text), uid, EXACT)
            if band_keys is not None:
                for key in band_keys(text):
                    keys.add(key, uid, NEAR)
    fault_point("curate-documents")
    keys.publish()
    publish_file(staged_removed, removed_path)
    publish_file(staged_docs, docs_path)
    stats = {"index": index, "source": task["source"], "path": task["path"], "bytes": task["bytes"],
             "documents": documents, "kept": kept, "kept_bytes": kept_bytes, "removed": dict(removed),
             "bad_records": problems.as_dict(), "seconds": round(time.monotonic() - started, 3)}
    write_durable(work / "docs" / f"{index:05d}.done.json", json.dumps(stats, ensure_ascii=False) + "\n")
    return stats


# ---- stage 2: pairs ---------------------------------------------------------------------------------

def pairs_task(task: dict[str, Any]) -> dict[str, Any]:
    """Stage 2 for one key partition: each document sharing a key with an earlier (smaller uid) one
    gets an edge to the smallest uid of that key."""
    work, partition = Path(task["work"]), task["partition"]
    files = sorted((work / "keys" / f"{partition:04d}").glob("[0-9]*.bin"))
    keys = np.concatenate([np.fromfile(path, dtype=KEY) for path in files]) if files else np.empty(0, KEY)
    keys.sort(order=["key", "uid"])
    edges = np.empty(0, PAIR)
    if len(keys):
        starts = np.flatnonzero(np.r_[True, keys["key"][1:] != keys["key"][:-1]])
        first = np.repeat(keys["uid"][starts], np.diff(np.r_[starts, len(keys)]))
        joined = keys["uid"] != first
        edges = np.empty(int(joined.sum()), PAIR)
        edges["a"], edges["b"], edges["kind"] = first[joined], keys["uid"][joined], keys["kind"][joined]
        edges = np.unique(edges)
    path = work / "pairs" / f"{partition:04d}.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_durable(path, edges.tobytes())
    stats = {"partition": partition, "keys": int(len(keys)), "edges": int(len(edges))}
    write_durable(path.with_suffix(".done.json"), json.dumps(stats) + "\n")
    return stats


# ---- stage 3: clusters ------------------------------------------------------------------------------

def clusters(work: Path, partitions: int) -> dict[str, Any]:
    """Stage 3: the duplicate clusters of every edge; ``work/removed.npy`` (uid, keeper, kind) sorted
    by uid, and the cluster size histogram."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    parts = [np.fromfile(work / "pairs" / f"{p:04d}.bin", dtype=PAIR) for p in range(partitions)]
    edges = np.concatenate(parts) if parts else np.empty(0, PAIR)
    removed = np.empty(0, REMOVED_DTYPE)
    sizes: Counter[int] = Counter()
    if len(edges):
        nodes, inverse = np.unique(np.concatenate([edges["a"], edges["b"]]), return_inverse=True)
        a, b = inverse[:len(edges)], inverse[len(edges):]
        graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (a, b)), shape=(len(nodes), len(nodes)))
        count, labels = connected_components(graph, directed=False)
        keeper = np.full(count, np.iinfo(np.uint64).max, dtype=np.uint64)
        np.minimum.at(keeper, labels, nodes)
        sizes = Counter(np.bincount(labels).tolist())
        exact_nodes = np.zeros(len(nodes), dtype=bool)
        exact_nodes[b[edges["kind"] == EXACT]] = True
        gone = nodes != keeper[labels]
        removed = np.empty(int(gone.sum()), REMOVED_DTYPE)
        removed["uid"], removed["keeper"] = nodes[gone], keeper[labels][gone]
        removed["kind"] = np.where(exact_nodes[gone], EXACT, NEAR)
    fault_point("curate-clusters")
    staged = work / f"{TMP_PREFIX}removed.npy"
    with open(staged, "wb") as handle:
        np.save(handle, removed)
    publish_file(staged, work / "removed.npy")
    stats = {"clusters": int(sum(sizes.values())), "edges": int(len(edges)), "removed": int(len(removed)),
             "cluster_sizes": {str(size): n for size, n in sorted(sizes.items())}}
    write_durable(work / "clusters.done.json", json.dumps(stats) + "\n")
    return stats


# ---- stage 4: write ---------------------------------------------------------------------------------

def _output_record(line: dict[str, Any]) -> dict[str, Any]:
    record = dict(line["record"]) if isinstance(line.get("record"), dict) else {}
    record[line.get("text_field") or "text"] = line["text"]
    return record


def _write_shard(records: list[dict[str, Any]], path: Path, fmt: str) -> None:
    staged = path.with_name(f"{TMP_PREFIX}{path.name}")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), staged)
    else:
        with _zstd_writer(staged) as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    publish_file(staged, path)


def write_task(task: dict[str, Any]) -> dict[str, Any]:
    """Stage 4 for one input file: its survivors minus the removed duplicates, as output shards."""
    config = CurateConfig.model_validate(task["recipe"])
    work, out, index = Path(task["work"]), Path(task["out"]), task["index"]
    text_field = next(s.text_field for s in config.sources if s.name == task["source"])
    removed = np.load(work / "removed.npy", mmap_mode="r")
    low, high = np.searchsorted(removed["uid"], [uid_of(index, 0), uid_of(index + 1, 0)])
    mine = {int(row["uid"]): (int(row["keeper"]), int(row["kind"])) for row in removed[low:high]}
    fmt = config.output.format
    shards: list[str] = []
    batch: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    written = 0
    sample_path = work / "removed" / f"{index:05d}.dedup.jsonl"
    with open(sample_path.with_name(f"{TMP_PREFIX}{sample_path.name}"), "w", encoding="utf-8") as sample:
        for raw in _zstd_lines(work / "docs" / f"{index:05d}.jsonl.zst"):
            line = json.loads(raw)
            if line["uid"] in mine:
                keeper, kind = mine[line["uid"]]
                reason = "exact_duplicate" if kind == EXACT else "near_duplicate"
                dropped[reason] += 1
                if _sampled(line["uid"], config.seed, config.output.keep_removed):
                    file, position = where_of(keeper)
                    sample.write(json.dumps({"where": line["where"], "step": reason.split("_")[0] + "_dedup",
                                             "reason": f"{reason} of file {file} document {position}",
                                             "duplicate_of": [file, position], "text": line["text"]},
                                            ensure_ascii=False) + "\n")
                continue
            batch.append(_output_record({**line, "text_field": text_field}))
            written += 1
            if len(batch) >= config.output.shard_documents:
                shards.append(_flush(batch, out, task, len(shards), fmt))
                batch = []
    if batch or not shards:
        shards.append(_flush(batch, out, task, len(shards), fmt))
    publish_file(sample_path.with_name(f"{TMP_PREFIX}{sample_path.name}"), sample_path)
    stats = {"index": index, "source": task["source"], "written": written, "dropped": dict(dropped), "shards": shards}
    write_durable(work / "write" / f"{index:05d}.done.json", json.dumps(stats, ensure_ascii=False) + "\n")
    return stats


def _flush(batch: list[dict[str, Any]], out: Path, task: dict[str, Any], number: int, fmt: str) -> str:
    path = out / DATA / task["source"] / f"{task['index']:05d}-{number:04d}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_shard(batch, path, fmt)
    return str(path)


# ---- driver -----------------------------------------------------------------------------------------

class Progress:
    """Documents/s and ETA of a stage as its tasks finish (input bytes are the measure of work)."""

    def __init__(self, stage: str, total_bytes: int, tasks: int) -> None:
        self.stage, self.total_bytes, self.tasks = stage, total_bytes, tasks
        self.done = self.bytes = self.documents = 0
        self.started = time.monotonic()

    def __call__(self, stats: dict[str, Any]) -> None:
        self.done += 1
        self.bytes += int(stats.get("bytes") or 0)
        self.documents += int(stats.get("documents") or 0)
        seconds = max(time.monotonic() - self.started, 1e-9)
        eta = (self.total_bytes - self.bytes) / (self.bytes / seconds) if self.bytes and self.total_bytes else 0.0
        print(f"[tanuki curate] {self.stage} {self.done}/{self.tasks}: {self.documents:,} documents, "
              f"{self.documents / seconds:,.0f} docs/s, ETA {eta:.0f} s", flush=True)


def _run(function: Callable[[dict[str, Any]], dict[str, Any]], tasks: list[dict[str, Any]], workers: int,
         ray_address: str | None, on_done: Callable[[dict[str, Any]], None]) -> None:
    if not tasks:
        return
    if ray_address:
        run_ray(function, tasks, None if ray_address == "local" else ray_address, on_done)
    else:
        run_local(function, tasks, max(1, min(workers, len(tasks))), on_done)


def curate(config: CurateConfig, out: Path, workers: int, ray_address: str | None = None) -> dict[str, Any]:
    """Run (or finish) every stage into ``out``; the outputs to publish."""
    out = out.resolve()
    work = out / WORK
    for directory in ("docs", "removed", "keys", "pairs", "write"):
        (work / directory).mkdir(parents=True, exist_ok=True)
    described = plan(config, out)
    earlier = _done(work / PLAN_FILE)
    if earlier is not None and earlier["digest"] != described["digest"]:
        raise BadInputError(f"{out}: holds a curation of other inputs or another recipe; use another directory "
                            "or remove it")
    write_durable(work / PLAN_FILE, json.dumps(described, indent=2, ensure_ascii=False) + "\n")
    for stale in work.rglob(f"{TMP_PREFIX}*"):  # what a task in flight when the last run died left
        stale.unlink(missing_ok=True)
    common = {"recipe": described["recipe"], "work": str(work), "out": str(out), "partitions": described["partitions"]}
    files = described["files"]
    print(f"[tanuki curate] {len(files)} files of {len(config.sources)} sources ({described['bytes'] / 1e6:,.1f} MB), "
          f"{described['partitions']} key partitions", flush=True)
    started = time.monotonic()

    pending = [{**common, **f} for f in files if _done(work / "docs" / f"{f['index']:05d}.done.json") is None]
    _run(documents_task, pending, workers, ray_address, Progress("documents", sum(t["bytes"] for t in pending),
                                                                  len(pending)))
    partitions = [{**common, "partition": p} for p in range(described["partitions"])
                  if _done(work / "pairs" / f"{p:04d}.done.json") is None]
    _run(pairs_task, partitions, workers, ray_address, lambda stats: None)
    cluster_stats = _done(work / "clusters.done.json") or clusters(work, described["partitions"])
    writes = [{**common, **f} for f in files if _done(work / "write" / f"{f['index']:05d}.done.json") is None]
    (out / DATA).mkdir(parents=True, exist_ok=True)
    _run(write_task, writes, workers, ray_address, lambda stats: None)
    return finish(config, out, described, cluster_stats, time.monotonic() - started)


def finish(config: CurateConfig, out: Path, described: dict[str, Any], cluster_stats: dict[str, Any],
           seconds: float) -> dict[str, Any]:
    """``stats.json`` (the funnel per step and per source), the removed sample, ``funnel.png``."""
    work = out / WORK
    documents = [json.loads((work / "docs" / f"{f['index']:05d}.done.json").read_text()) for f in described["files"]]
    written = [json.loads((work / "write" / f"{f['index']:05d}.done.json").read_text()) for f in described["files"]]
    sources: dict[str, dict[str, Any]] = {}
    for first, last in zip(documents, written, strict=True):
        entry = sources.setdefault(first["source"], {"documents_in": 0, "bytes_in": 0, "documents_out": 0,
                                                     "removed": Counter()})
        entry["documents_in"] += first["documents"]
        entry["bytes_in"] += first["bytes"]
        entry["documents_out"] += last["written"]
        entry["removed"].update(first["removed"])
        entry["removed"].update({reason.replace("_duplicate", "_dedup"): n for reason, n in last["dropped"].items()})
    funnel = []
    remaining = sum(entry["documents_in"] for entry in sources.values())
    removed_total: Counter[str] = Counter()
    for entry in sources.values():
        removed_total.update(entry["removed"])
    for step in config.steps:
        gone = removed_total.get(step.step, 0)
        funnel.append({"step": step.step, "documents_in": remaining, "removed": gone, "documents_out": remaining - gone})
        remaining -= gone
    stats = {"documents_in": sum(e["documents_in"] for e in sources.values()),
             "bytes_in": sum(e["bytes_in"] for e in sources.values()),
             "documents_out": sum(e["documents_out"] for e in sources.values()),
             "steps": funnel,
             "sources": {name: {**entry, "removed": dict(entry["removed"])} for name, entry in sources.items()},
             "duplicates": cluster_stats, "seconds": round(seconds, 3),
             "bad_records": {d["path"]: d["bad_records"] for d in documents if d["bad_records"]}}
    write_durable(out / STATS_FILE, json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    removed_dir = out / REMOVED
    removed_dir.mkdir(exist_ok=True)
    lines: list[str] = []
    for path in sorted((work / "removed").glob("[0-9]*.jsonl")):
        lines.extend(line for line in path.read_text(encoding="utf-8").splitlines() if line)
    write_durable(removed_dir / "sample.jsonl", "".join(line + "\n" for line in lines))
    plot = _funnel_plot(funnel, out / "funnel.png")
    shards = [shard for entry in written for shard in entry["shards"]]
    return {"dataset": str(out / DATA), "shards": len(shards), "documents": stats["documents_out"],
            "documents_in": stats["documents_in"], "stats": str(out / STATS_FILE),
            "removed": str(removed_dir / "sample.jsonl"), **({"funnel": str(plot)} if plot else {})}


def _funnel_plot(funnel: list[dict[str, Any]], path: Path) -> Path | None:
    if not funnel:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 0.5 + 0.45 * len(funnel)))
    axis.barh([row["step"] for row in funnel][::-1], [row["documents_out"] for row in funnel][::-1], color="#4c78a8")
    axis.set_xlabel("documents kept after the step")
    figure.tight_layout()
    staged = path.with_name(f"{TMP_PREFIX}{path.name}")
    figure.savefig(staged, format="png")
    plt.close(figure)
    return publish_file(staged, path)

