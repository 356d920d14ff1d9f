"""Reading documents from corpora as users have them, as streams (never a whole corpus in memory).

A source's ``path`` is a file, a directory (every corpus file below it) or a glob; each file is
``.jsonl`` / ``.json`` (one object per line), the same compressed (``.gz``, ``.zst``), ``.parquet``
(the ``text_field`` column, read a row group at a time) or plain text (documents separated by blank
lines, so a paragraph keeps its inner newlines; ``.txt``, or any file when ``format: text``).
Files are read in sorted path order, so a source is the same stream on every machine.

A record that is not JSON, not an object, or lacks a string ``text_field`` is a *bad record*:
with ``on_bad_record: error`` the reader stops naming ``file:line``; with ``skip`` it is counted
in a ``Problems`` by reason, with the first places it happened. A corrupt compressed stream is
always an error naming the file and the compressed byte offset where it broke.
"""

from __future__ import annotations

import glob as globbing
import gzip
import io
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tanuki_common.errors import BadInputError
from tanuki_pipelines.config import DataSource

FileFormat = Literal["jsonl", "parquet", "text"]
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
JSONL_SUFFIXES = {".jsonl", ".json"}
CORPUS_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".json.zst", ".parquet", ".txt",
                   ".txt.gz", ".txt.zst")
"""What a directory source picks up (a glob or a single file may name anything)."""


@dataclass
class Problems:
    """Records left out, counted by reason, with the first few places (``file:line``) of each."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(where)

    def merge(self, other: dict[str, Any]) -> None:
        """Add the counts of another ``as_dict()`` (e.g. a worker's)."""
        for reason, found in other.items():
            self.counts[reason] += found["count"]
            room = 5 - len(self.examples.setdefault(reason, []))
            self.examples[reason] += found["first"][:max(room, 0)]

    def as_dict(self) -> dict[str, Any]:
        return {reason: {"count": count, "first": self.examples[reason]} for reason, count in self.counts.items()}


@dataclass(frozen=True)
class Document:
    text: str
    where: str
    """``file:line`` (parquet: ``file:row``), for messages and provenance."""
    record: dict[str, Any] | None = None
    """The whole JSON object or parquet row (None for plain text)."""


def file_format(path: Path, declared: str) -> tuple[FileFormat, str | None]:
    """(format, compression) of one corpus file from the source's ``format`` and the file's suffixes."""
    suffix = path.suffix.lower()
    compression = COMPRESSIONS.get(suffix)
    inner = Path(path.stem).suffix.lower() if compression else suffix
    if declared == "parquet" or (declared == "auto" and suffix == ".parquet"):
        return "parquet", None
    if declared == "jsonl" or (declared == "auto" and inner in JSONL_SUFFIXES):
        return "jsonl", compression
    return "text", compression


def source_files(source: DataSource) -> list[Path]:
    """The files of a source in reading order; a source naming nothing readable is an error."""
    if source.path is None:
        raise BadInputError(f"data source {source.name!r}: path is not set")
    text = str(source.path)
    if any(char in text for char in "*?["):
        files = sorted(Path(p) for p in globbing.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise BadInputError(f"data source {source.name!r}: path: no file matches {text}")
    elif source.path.is_dir():
        files = sorted(p for p in source.path.rglob("*") if p.is_file() and p.name.lower().endswith(CORPUS_SUFFIXES))
        if not files:
            raise BadInputError(f"data source {source.name!r}: path: no corpus file ({', '.join(CORPUS_SUFFIXES)}) "
                                f"under {text}")
    elif source.path.is_file():
        files = [source.path]
    else:
        raise BadInputError(f"data source {source.name!r}: path: no such file or directory: {text}")
    for path in files:
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise BadInputError(f"data source {source.name!r}: cannot read {path}: {exc.strerror}") from None
    return files


class _CountingReader(io.RawIOBase):
    """A binary file that knows how many compressed bytes were read (for error offsets)."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw, self.offset = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.raw.readinto(buffer)
        self.offset += count or 0
        return count or 0

    def close(self) -> None:
        self.raw.close()
        super().close()


class _ChunkReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            self.pending = next(self.chunks, b"")
            if not self.pending:
                return 0
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count


def _zstd_chunks(raw: io.RawIOBase) -> Iterator[bytes]:
    """Decompressed data of every zstd frame in ``raw``. A stream that ends inside a frame is an
    error: zstandard's ``stream_reader`` returns a cut-short file as if it were whole."""
    import zstandard

    frame = zstandard.ZstdDecompressor().decompressobj()
    started = False
    while chunk := raw.read(1 << 20):
        while chunk:
            if frame.eof:  # the next frame of a concatenated stream
                frame = zstandard.ZstdDecompressor().decompressobj()
            started = True
            yield frame.decompress(chunk)
            chunk = frame.unused_data if frame.eof else b""
    if started and not frame.eof:
        raise EOFError("the stream ends inside a zstd frame (cut short?)")


def _decompressed(path: Path, compression: str | None) -> tuple[io.BufferedReader | gzip.GzipFile, _CountingReader]:
    counting = _CountingReader(path.open("rb"))
    if compression == "gzip":
        return gzip.GzipFile(fileobj=io.BufferedReader(counting, 1 << 20)), counting
    if compression == "zstd":
        return io.BufferedReader(_ChunkReader(_zstd_chunks(counting)), 1 << 20), counting
    return io.BufferedReader(counting, 1 << 20), counting


def read_lines(path: Path, compression: str | None) -> Iterator[str]:
    """Decoded lines of a (possibly compressed) text file; a corrupt stream names its byte offset."""
    stream, counting = _decompressed(path, compression)
    errors: tuple[type[BaseException], ...] = (zlib.error, EOFError, OSError)
    if compression == "zstd":
        import zstandard

        errors = (*errors, zstandard.ZstdError)
    try:
        with stream:
            text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
            try:
                yield from text
            except errors as exc:
                raise BadInputError(f"{path}: corrupt {compression} stream near compressed byte {counting.offset}: "
                                    f"{exc}") from None
    finally:
        counting.close()


BadRecord = Callable[[str, str], None]
"""``(reason, "file:line")`` for each bad record."""


def _text_of(record: Any, source: DataSource) -> tuple[str | None, str | None]:
    """(text, None) or (None, why the record is bad)."""
    if not isinstance(record, dict):
        return None, "not a JSON object"
    text = record.get(source.text_field)
    if not isinstance(text, str):
        return None, f"no text in {source.text_field!r}"
    return text, None


def _jsonl(path: Path, compression: str | None, source: DataSource, bad: BadRecord) -> Iterator[Document]:
    for number, line in enumerate(read_lines(path, compression), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad("not JSON", where)
            continue
        text, problem = _text_of(record, source)
        if problem:
            bad(problem, where)
        elif text is not None and text.strip():  # text is None only with a problem
            yield Document(text, where, record)


def _parquet(path: Path, source: DataSource, bad: BadRecord) -> Iterator[Document]:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's errors name no field: say which file
        raise BadInputError(f"{path}: not a readable parquet file: {exc}") from None
    if source.text_field not in handle.schema_arrow.names:
        raise BadInputError(f"data source {source.name!r}: text_field: {path} has no column {source.text_field!r} "
                            f"(columns: {', '.join(handle.schema_arrow.names)})")
    row = 0
    for group in range(handle.num_row_groups):
        for record in handle.read_row_group(group).to_pylist():
            row += 1
            text = record.get(source.text_field)
            if not isinstance(text, str):
                bad(f"no text in {source.text_field!r}", f"{path}:{row}")
            elif text.strip():
                yield Document(text, f"{path}:{row}", record)


def _paragraphs(path: Path, compression: str | None) -> Iterator[Document]:
    paragraph: list[str] = []
    start = 1
    for number, line in enumerate(read_lines(path, compression), start=1):
        line = line.rstrip("\r\n")
        if line.strip():
            if not paragraph:
                start = number
            paragraph.append(line)
        elif paragraph:
            yield Document("\n".join(paragraph), f"{path}:{start}")
            paragraph = []
    if paragraph:
        yield Document("\n".join(paragraph), f"{path}:{start}")


def bad_record_policy(source: DataSource, problems: Problems | None, default: str = "error") -> BadRecord:
    """What a reader does with a bad record: stop naming it, or count it in ``problems``."""
    policy = source.on_bad_record or default

    def handle(reason: str, where: str) -> None:
        if policy == "error":
            raise BadInputError(f"{where}: {reason} (data source {source.name!r}; on_bad_record: skip counts such "
                                "records instead)")
        if problems is not None:
            problems.add(reason, where)

    return handle


def iter_file(path: Path, source: DataSource, bad: BadRecord) -> Iterator[Document]:
    """The non-empty documents of one file of ``source``."""
    kind, compression = file_format(path, source.format)
    if kind == "parquet":
        yield from _parquet(path, source, bad)
    elif kind == "jsonl":
        yield from _jsonl(path, compression, source, bad)
    else:
        yield from _paragraphs(path, compression)


def iter_documents(source: DataSource, problems: Problems | None = None, default: str = "error",
                   files: list[Path] | None = None) -> Iterator[Document]:
    """The non-empty documents of a source, file after file (``files``: already listed ones)."""
    bad = bad_record_policy(source, problems, default)
    for path in files if files is not None else source_files(source):
        yield from iter_file(path, source, bad)


def iter_texts(source: DataSource) -> Iterator[str]:
    """The texts of a source (bad records are errors); a source without a document is an error."""
    empty = True
    for document in iter_documents(source):
        empty = False
        yield document.text
    if empty:
        raise BadInputError(f"data source {source.name!r}: corpus is empty: {source.path}")
