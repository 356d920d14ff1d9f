"""``tanuki curate`` end to end on generated corpora: planted exact and near duplicates across files
are found (one per cluster kept: the smallest file and position), distinct documents kept, the
result independent of the worker count, resumable after a kill, bad input refused before work."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tanuki_pipelines.cli import main as tanuki

CHARS = ("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
         "日本語文章東京大阪京都山川海空雨雪風花鳥")


def distinct(rng: random.Random, n: int, length: int = 300) -> list[str]:
    return ["".join(rng.choice(CHARS) for _ in range(length)) for _ in range(n)]


def edited(rng: random.Random, text: str, edits: int = 3) -> str:
    chars = list(text)
    for _ in range(edits):
        chars[rng.randrange(len(chars))] = rng.choice(CHARS)
    return "".join(chars)


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Any]:
    """Three files; file 1 repeats a document of file 0 exactly and near, file 2 near-copies one of file 1."""
    rng = random.Random(7)
    texts = distinct(rng, 60)
    files = [texts[:20], texts[20:40], texts[40:]]
    files[1].insert(5, texts[3])                      # exact copy of file 0 doc 3
    files[1].insert(9, edited(rng, texts[7]))         # near copy of file 0 doc 7
    files[2].insert(0, edited(rng, texts[25], 2))     # near copy of file 1 doc 5 (texts[25] after the insert)
    files[2].insert(4, texts[3])                      # a third copy of file 0 doc 3
    paths = []
    for number, documents in enumerate(files):
        path = tmp_path / "corpus" / f"part-{number}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(json.dumps({"text": t, "id": f"{number}-{i}", "url": f"u{i}"}, ensure_ascii=False)
                                + "\n" for i, t in enumerate(documents)), encoding="utf-8")
        paths.append(path)
    return {"dir": tmp_path / "corpus", "texts": texts, "files": files, "paths": paths}


def recipe(tmp_path: Path, corpus_dir: Path, **fields: Any) -> Path:
    path = tmp_path / f"curate-{len(list(tmp_path.glob('curate-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"sources": [{"name": "ja", "path": str(corpus_dir)}],
                                    "steps": [{"step": "normalize"}, {"step": "length", "min_chars": 50},
                                              {"step": "exact_dedup"}, {"step": "near_dedup"}],
                                    "output": {"keep_removed": 1.0, "shard_documents": 15}, **fields}))
    return path


def read_output(out: Path) -> list[dict[str, Any]]:
    import zstandard

    records = []
    for shard in sorted((out / "data").glob("*/*.jsonl.zst")):
        with open(shard, "rb") as raw:
            text = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8").read()
        records += [json.loads(line) for line in text.splitlines()]
    return records


def test_planted_duplicates_across_files_are_removed_keeping_the_first(tmp_path: Path, corpus: dict[str, Any]) -> None:
    out = tmp_path / "out"
    assert tanuki(["curate", "--config", str(recipe(tmp_path, corpus["dir"])), "--output-dir", str(out),
                   "--cpus", "2"]) == 0
    kept = read_output(out)
    ids = {record["id"] for record in kept}
    assert len(kept) == 60  # the 60 distinct documents, each once
    assert {"1-5", "1-9", "2-0", "2-4"}.isdisjoint(ids)  # the copies, all in later files
    assert {"0-3", "0-7", "1-6"} <= ids  # the first of each cluster (file 1 doc 6 is texts[25])
    assert all(set(record) == {"text", "id", "url"} for record in kept)  # every input field kept
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents_in"] == 64 and stats["documents_out"] == 60
    removed = {row["step"]: row["removed"] for row in stats["steps"]}
    assert removed == {"normalize": 0, "length": 0, "exact_dedup": 2, "near_dedup": 2}
    assert stats["duplicates"]["cluster_sizes"] == {"2": 2, "3": 1}
    sample = [json.loads(line) for line in (out / "removed" / "sample.jsonl").read_text().splitlines()]
    assert sorted(row["where"].rsplit(":", 1)[1] for row in sample) == ["1", "10", "5", "6"]
    outputs = json.loads((out / "outputs.json").read_text())
    assert outputs["documents"] == 60 and Path(outputs["funnel"]).is_file()


def test_two_workers_give_what_one_gives(tmp_path: Path, corpus: dict[str, Any]) -> None:
    config = recipe(tmp_path, corpus["dir"])
    results = []
    for workers in (1, 2):
        out = tmp_path / f"out-{workers}"
        assert tanuki(["curate", "--config", str(config), "--output-dir", str(out), "--cpus", str(workers)]) == 0
        results.append((read_output(out), sorted(str(p.relative_to(out)) for p in (out / "data").rglob("*"))))
    assert results[0] == results[1]


@pytest.mark.slow
def test_ray_data_tasks_give_what_local_workers_give(tmp_path: Path, corpus: dict[str, Any]) -> None:
    config = recipe(tmp_path, corpus["dir"])
    assert tanuki(["curate", "--config", str(config), "--output-dir", str(tmp_path / "pool"), "--cpus", "2"]) == 0
    assert tanuki(["curate", "--config", str(config), "--output-dir", str(tmp_path / "ray"),
                   "--ray-address", "local"]) == 0
    assert read_output(tmp_path / "ray") == read_output(tmp_path / "pool")
    stats = [json.loads((tmp_path / side / "stats.json").read_text()) for side in ("pool", "ray")]
    assert stats[0]["steps"] == stats[1]["steps"] and stats[0]["duplicates"] == stats[1]["duplicates"]


def test_killed_while_clustering_a_rerun_gives_the_same_output(tmp_path: Path, corpus: dict[str, Any]) -> None:
    config = recipe(tmp_path, corpus["dir"])
    command = [sys.executable, "-m", "tanuki_pipelines.cli", "curate", "--config", str(config), "--cpus", "1"]
    killed = subprocess.run([*command, "--output-dir", str(tmp_path / "out")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TANUKI_FAULT_KILL_AT": "curate-clusters"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (tmp_path / "out" / "outputs.json").exists()
    resumed = subprocess.run([*command, "--output-dir", str(tmp_path / "out")], capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "documents 1/" not in resumed.stdout  # the documents stage was done: not run again
    clean = subprocess.run([*command, "--output-dir", str(tmp_path / "clean")], capture_output=True, text=True,
                           timeout=300)
    assert clean.returncode == 0
    assert read_output(tmp_path / "out") == read_output(tmp_path / "clean")


@pytest.mark.parametrize(("change", "expected"), [
    ({"steps": [{"step": "sparkle"}]}, "does not match any of the expected tags"),
    ({"steps": [{"step": "near_dedup", "threshold": 1.5}]}, "steps.0.near_dedup.threshold"),
    ({"steps": [{"step": "length", "min_chars": 10, "max_chars": 5}]}, "max_chars must not be below min_chars"),
    ({"steps": [{"step": "pii"}, {"step": "pii"}]}, "['pii'] appear more than once"),
    ({"sources": [{"name": "ja", "path": "/nowhere/at/all.jsonl"}]}, "no such file or directory: /nowhere/at/all.jsonl"),
    ({"sources": [{"name": "ja", "path": "BROKEN", "text_field": "body"}]}, "no string 'body' (text_field)"),
])
def test_bad_input_exits_2_before_work(tmp_path: Path, corpus: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                       change: dict[str, Any], expected: str) -> None:
    if change.get("sources", [{}])[0].get("path") == "BROKEN":
        change = {"sources": [{**change["sources"][0], "path": str(corpus["paths"][0])}]}
    out = tmp_path / "out"
    assert tanuki(["curate", "--config", str(recipe(tmp_path, corpus["dir"], **change)), "--output-dir", str(out)]) == 2
    assert expected in capsys.readouterr().err
    assert not (out / "work").exists()


def test_a_corrupt_record_is_named_or_counted(tmp_path: Path, corpus: dict[str, Any],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = corpus["paths"][1]
    bad.write_text(bad.read_text(encoding="utf-8") + "{not json\n", encoding="utf-8")
    assert tanuki(["curate", "--config", str(recipe(tmp_path, corpus["dir"])), "--output-dir",
                   str(tmp_path / "strict")]) == 2
    assert f"{bad}:23" in capsys.readouterr().err
    skip = recipe(tmp_path, corpus["dir"], sources=[{"name": "ja", "path": str(corpus["dir"]), "on_bad_record": "skip"}])
    assert tanuki(["curate", "--config", str(skip), "--output-dir", str(tmp_path / "lenient")]) == 0
    stats = json.loads((tmp_path / "lenient" / "stats.json").read_text())
    assert list(stats["bad_records"]) == [str(bad)]
    assert "part-1.jsonl:23" in json.dumps(stats["bad_records"])
