"""The token store: Megatron's format both ways, the same blocks as packing the corpus in memory,
independent of workers and shards, resumable after SIGKILL byte for byte, bad input refused first."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
import zstandard

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import DataSource
from tanuki_pipelines.tokenize.build import build_store
from tanuki_pipelines.tokenize.config import TokenizeConfig
from tanuki_pipelines.tokenize.store import open_sources

REPO = Path(__file__).resolve().parents[3]
CORPUS = REPO / "pipelines" / "recipes" / "debug" / "corpus"
sys.path.insert(0, str(REPO / "benchmarks"))
from legacy_packing import tokenize_source  # noqa: E402  (today's packing, the reference)


def documents(name: str) -> list[str]:
    return [json.loads(line)["text"] for line in (CORPUS / f"{name}.jsonl").read_text().splitlines() if line.strip()]


def split_corpus(root: Path) -> Path:
    """The Japanese debug corpus cut into five files of four formats (one source, many shards)."""
    texts = documents("ja")
    parts = [texts[i * len(texts) // 5:(i + 1) * len(texts) // 5] for i in range(5)]
    root.mkdir(parents=True)

    def lines(part: list[str]) -> bytes:
        return "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in part).encode()

    (root / "00.jsonl").write_bytes(lines(parts[0]))
    (root / "01.jsonl.gz").write_bytes(gzip.compress(lines(parts[1])))
    (root / "02.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines(parts[2])))
    pq.write_table(pa.table({"text": parts[3]}), root / "03.parquet")
    (root / "04.jsonl").write_bytes(lines(parts[4]))
    return root


def store_files(store: Path) -> dict[str, bytes]:
    """What must not depend on how the store was built (not stats.json: it holds timings)."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file() and p.suffix in (".bin", ".idx") or p.name == "store.json"}


def test_blocks_equal_packing_the_whole_corpus_in_memory(debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    config = TokenizeConfig(sources=[{"name": "ja", "path": split_corpus(tmp_path / "ja")},
                                     {"name": "en", "path": CORPUS / "en.jsonl"}], tokenizer=debug_tokenizer_dir,
                            batch_documents=7)
    index = build_store(config, tmp_path / "store", cpus=1)
    assert index["dtype"] == "uint16" and len(index["sources"]["ja"]["shards"]) == 5
    for name, seq_len in (("ja", 128), ("en", 128), ("ja", 37)):
        expected = tokenize_source(CORPUS / f"{name}.jsonl", debug_tokenizer_dir, seq_len)
        blocks, = open_sources(tmp_path / "store", [name], seq_len)
        assert len(blocks) == len(expected) > 0
        assert all((blocks[i] == expected[i]).all() for i in range(len(blocks)))  # blocks cross shard ends


def test_megatron_reads_what_we_wrote(debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    from tanuki_pipelines.tokenize.megatron import IndexedDataset
    from tanuki_pipelines.tokenizer.special import load_tokenizer

    build_store(TokenizeConfig(sources=[{"name": "en", "path": CORPUS / "en.jsonl"}], tokenizer=debug_tokenizer_dir),
                tmp_path / "store", cpus=1)
    tokenizer = load_tokenizer(debug_tokenizer_dir, "t")
    dataset = IndexedDataset(str(tmp_path / "store" / "shards" / "en" / "00000"))
    texts = documents("en")
    assert len(dataset) == len(texts) and dataset.sequence_lengths.dtype == np.int32
    for index in (0, 1, len(texts) - 1):
        assert dataset[index].tolist() == tokenizer(texts[index], add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id]
    stats = json.loads((tmp_path / "store" / "stats.json").read_text())["sources"]["en"]
    assert stats["documents"] == len(texts) and stats["tokens"] == int(dataset.sequence_lengths.sum())
    assert 1 < stats["characters_per_token"] < 10 and stats["bad_records"] == {}


@pytest.mark.slow  # spawns tokenizer processes
def test_two_workers_build_the_same_store_as_one(debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    config = TokenizeConfig(sources=[{"name": "ja", "path": split_corpus(tmp_path / "ja")}],
                            tokenizer=debug_tokenizer_dir)
    build_store(config, tmp_path / "one", cpus=1)
    build_store(config.model_copy(update={"workers": 2}), tmp_path / "two", cpus=2)
    assert store_files(tmp_path / "one") == store_files(tmp_path / "two")


def tokenize_command(recipe: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tanuki_pipelines.cli", "tokenize", "--config", str(recipe),
                           "--output-dir", str(out), "--cpus", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.mark.slow  # spawns tokenizer processes
def test_sigkill_mid_build_then_rerun_gives_the_same_store(debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "tokenize.yaml"
    recipe.write_text(yaml.safe_dump({"sources": [{"name": "ja", "path": str(split_corpus(tmp_path / "ja"))}],
                                      "tokenizer": str(debug_tokenizer_dir)}))
    whole = tokenize_command(recipe, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = tokenize_command(recipe, tmp_path / "killed", TANUKI_FAULT_KILL_AT="tokenize:before-shard-marker")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "store.json").exists() and not (tmp_path / "killed" / "outputs.json").exists()
    again = tokenize_command(recipe, tmp_path / "killed")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "5 to tokenize" in again.stdout  # the killed shard had data but no marker: done again
    assert store_files(tmp_path / "whole") == store_files(tmp_path / "killed")
    assert not list((tmp_path / "killed").rglob(".tmp-*"))
    finished = tokenize_command(recipe, tmp_path / "killed")
    assert "0 to tokenize" in finished.stdout
    outputs = json.loads((tmp_path / "killed" / "outputs.json").read_text())
    assert outputs["token_count"] == json.loads((tmp_path / "whole" / "store.json").read_text())["sources"]["ja"]["tokens"]
    assert outputs["tokens"] == str(tmp_path / "killed") and outputs["tokenizer"] == str(tmp_path / "killed" / "tokenizer")
    assert (tmp_path / "killed" / "tokenizer" / "tokenizer.json").read_bytes() == \
        (debug_tokenizer_dir / "tokenizer.json").read_bytes()  # the store's own copy of its tokenizer


def test_bad_records_stop_the_build_naming_the_line_or_are_counted(debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"text": "一つ目"}\n{broken\n{"text": "二つ目"}\n')
    config = TokenizeConfig(sources=[{"name": "ja", "path": corpus}], tokenizer=debug_tokenizer_dir)
    with pytest.raises(BadInputError, match=rf"{corpus}:2: not JSON"):
        build_store(config, tmp_path / "strict", cpus=1)
    assert not (tmp_path / "strict" / "store.json").exists()
    lenient = TokenizeConfig(sources=[{"name": "ja", "path": corpus, "on_bad_record": "skip"}],
                             tokenizer=debug_tokenizer_dir)
    index = build_store(lenient, tmp_path / "lenient", cpus=1)
    assert index["sources"]["ja"]["documents"] == 2
    stats = json.loads((tmp_path / "lenient" / "stats.json").read_text())
    assert stats["sources"]["ja"]["bad_records"] == {"not JSON": {"count": 1, "first": [f"{corpus}:2"]}}


def test_inputs_are_refused_before_any_work(debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    good = CORPUS / "en.jsonl"

    def refused(sources: list[dict], match: str, tokenizer: Path = debug_tokenizer_dir) -> None:
        with pytest.raises(BadInputError, match=match):
            build_store(TokenizeConfig(sources=sources, tokenizer=tokenizer), tmp_path / "store", cpus=1)
        assert not list((tmp_path / "store" / "shards").rglob("*.bin")) if (tmp_path / "store").exists() else True

    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "nocolumn.parquet")
    (tmp_path / "notes.csv").write_text("a,b\n")
    refused([{"name": "en", "path": good}, {"name": "ja", "path": tmp_path / "missing.jsonl"}],
            "'ja': path: no such file or directory")
    refused([{"name": "en", "path": good}, {"name": "p", "path": tmp_path / "nocolumn.parquet"}],
            "text_field: .*nocolumn.parquet has no column 'text' \\(columns: body\\)")
    refused([{"name": "c", "path": tmp_path / "notes.csv"}], "format: cannot tell the format of .*notes.csv")
    refused([{"name": "en", "path": good}], "tokenizer: no tokenizer in", tokenizer=tmp_path)


def test_a_store_of_other_inputs_is_not_mixed_in(debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    build_store(TokenizeConfig(sources=[{"name": "en", "path": CORPUS / "en.jsonl"}], tokenizer=debug_tokenizer_dir),
                tmp_path / "store", cpus=1)
    with pytest.raises(BadInputError, match="holds a token store of other inputs"):
        build_store(TokenizeConfig(sources=[{"name": "en", "path": CORPUS / "ja.jsonl"}],
                                   tokenizer=debug_tokenizer_dir), tmp_path / "store", cpus=1)


@pytest.mark.slow
def test_ray_data_builds_the_same_store(debug_tokenizer_dir: Path, tmp_path: Path) -> None:
    config = TokenizeConfig(sources=[{"name": "ja", "path": split_corpus(tmp_path / "ja")}],
                            tokenizer=debug_tokenizer_dir)
    build_store(config, tmp_path / "pool", cpus=1)
    build_store(config, tmp_path / "ray", cpus=1, ray_address="local")
    assert store_files(tmp_path / "pool") == store_files(tmp_path / "ray")


def test_source_as_datasource_keeps_its_name(debug_tokenizer_dir: Path) -> None:
    with pytest.raises(ValueError, match="two sources share a name"):
        TokenizeConfig(sources=[DataSource(name="a", path=CORPUS / "en.jsonl"),
                                DataSource(name="a", path=CORPUS / "ja.jsonl")], tokenizer=debug_tokenizer_dir)


def test_workers_follow_the_recipe_else_cores_shards_and_input_size() -> None:
    from tanuki_pipelines.tokenize.build import BYTES_PER_WORKER, local_workers

    shards = [{"bytes": BYTES_PER_WORKER}] * 3
    assert local_workers(None, 2, shards) == 2 and local_workers(None, 8, shards) == 3
    assert local_workers(None, 8, [{"bytes": 1000}] * 5) == 1  # a small corpus: no process start-up to pay
    assert local_workers(4, 2, shards) == 3 and local_workers(2, 8, [{"bytes": 10}] * 5) == 2
