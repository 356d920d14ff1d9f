"""Corpus sources as users have them: every format streamed, directories and globs, bad records
stopped or counted by file:line, corrupt compressed streams named with their byte offset."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import DataSource
from tanuki_pipelines.corpus_io import Problems, iter_documents, iter_texts, source_files

TEXTS = ["吾輩は猫である。名前はまだ無い。", "The quick brown fox.\nSecond line.", "三つ目の文書"]


def jsonl(texts: list[str], field: str = "text") -> bytes:
    return "".join(json.dumps({field: text, "id": i}, ensure_ascii=False) + "\n" for i, text in enumerate(texts)).encode()


def write_all_formats(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": root / "a.jsonl", "gz": root / "b.jsonl.gz", "zst": root / "c.jsonl.zst",
             "parquet": root / "d.parquet", "text": root / "e.txt"}
    paths["jsonl"].write_bytes(jsonl(TEXTS))
    paths["gz"].write_bytes(gzip.compress(jsonl(TEXTS)))
    paths["zst"].write_bytes(zstandard.ZstdCompressor().compress(jsonl(TEXTS)))
    pq.write_table(pa.table({"text": TEXTS, "lang": ["ja", "en", "ja"]}), paths["parquet"], row_group_size=2)
    paths["text"].write_text("\n\n".join(TEXTS) + "\n", encoding="utf-8")
    return paths


@pytest.mark.parametrize("kind", ["jsonl", "gz", "zst", "parquet", "text"])
def test_every_format_yields_the_same_documents(tmp_path: Path, kind: str) -> None:
    path = write_all_formats(tmp_path)[kind]
    documents = list(iter_documents(DataSource(name="c", path=path)))
    assert [d.text for d in documents] == TEXTS
    assert documents[0].where.startswith(f"{path}:")
    if kind != "text":
        assert documents[1].record["text"] == TEXTS[1]


def test_a_directory_and_a_glob_read_their_files_in_sorted_order(tmp_path: Path) -> None:
    paths = write_all_formats(tmp_path / "corpus")
    (tmp_path / "corpus" / "notes.csv").write_text("not a corpus file")
    assert source_files(DataSource(name="c", path=tmp_path / "corpus")) == sorted(paths.values())
    assert list(iter_texts(DataSource(name="c", path=tmp_path / "corpus"))) == TEXTS * 5
    globbed = DataSource(name="c", path=tmp_path / "corpus" / "*.jsonl*")
    assert source_files(globbed) == [paths["jsonl"], paths["gz"], paths["zst"]]


def test_a_bad_record_stops_naming_file_and_line_unless_skipped(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n\n{broken\n[1]\n{"body": "x"}\n{"text": "fine"}\n')
    with pytest.raises(BadInputError, match=rf"{path}:3: not JSON .*on_bad_record: skip"):
        list(iter_documents(DataSource(name="c", path=path)))
    problems = Problems()
    found = list(iter_documents(DataSource(name="c", path=path, on_bad_record="skip"), problems))
    assert [d.text for d in found] == ["ok", "fine"]
    assert problems.as_dict() == {"not JSON": {"count": 1, "first": [f"{path}:3"]},
                                  "not a JSON object": {"count": 1, "first": [f"{path}:4"]},
                                  "no text in 'text'": {"count": 1, "first": [f"{path}:5"]}}


@pytest.mark.parametrize("compression", ["gz", "zst"])
def test_a_corrupt_stream_names_the_file_and_the_byte_offset(tmp_path: Path, compression: str) -> None:
    data = jsonl([f"文書{i} " * 40 for i in range(4000)])
    # (the zstd CLI writes a checksum by default, as here: what lets a decoder see corruption)
    packed = gzip.compress(data) if compression == "gz" else \
        zstandard.ZstdCompressor(write_checksum=True).compress(data)
    broken = bytearray(packed)
    middle = len(broken) // 2
    broken[middle:middle + len(broken) // 8] = bytes(len(broken) // 8)
    path = tmp_path / f"broken.jsonl.{compression}"
    path.write_bytes(bytes(broken))
    with pytest.raises(BadInputError, match=rf"{path}: corrupt (gzip|zstd) stream near compressed byte \d+") as error:
        list(iter_documents(DataSource(name="c", path=path, on_bad_record="skip")))
    assert "near compressed byte 0" not in str(error.value)
    path.write_bytes(packed[:len(packed) // 2])  # cut short, as a copy that did not finish
    with pytest.raises(BadInputError, match=rf"{path}: corrupt (gzip|zstd) stream near compressed byte \d+"):
        list(iter_documents(DataSource(name="c", path=path, on_bad_record="skip")))


def test_missing_paths_and_empty_sources_are_named(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="path: no such file or directory"):
        source_files(DataSource(name="c", path=tmp_path / "nope.jsonl"))
    with pytest.raises(BadInputError, match=r"path: no file matches .*\*.zst"):
        source_files(DataSource(name="c", path=tmp_path / "*.zst"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="no corpus file"):
        source_files(DataSource(name="c", path=tmp_path / "empty"))
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(BadInputError, match="corpus is empty"):
        list(iter_texts(DataSource(name="c", path=tmp_path / "blank.jsonl")))
