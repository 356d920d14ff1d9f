"""分かち書き for tokenizer training: MeCab word boundaries that SentencePiece pieces must not cross.

Each training line is split into MeCab words (fugashi + unidic-lite) and the words are joined with
``DELIMITER``, which SentencePiece's ``pretokenization_delimiter`` option treats as a boundary and
removes. The spacing of the original text is kept (each word carries the whitespace before it), so
the pieces are exactly what encoding raw text later produces: nothing at inference knows about MeCab.
"""

from __future__ import annotations

import functools
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

DELIMITER = "\ue000"
"""A private-use character: never in real text, left alone by NFKC (tabs would be lost as boundaries)."""
CHUNK_LINES = 2000
"""Lines one worker splits per task."""


@functools.cache
def mecab_tagger(dictionary: str = "unidic-lite") -> Any:
    import fugashi
    import unidic_lite

    if dictionary != "unidic-lite":
        raise ValueError(f"unknown MeCab dictionary {dictionary!r}")
    return fugashi.Tagger(f"-d {unidic_lite.DICDIR}")


def split_words(line: str, tagger: Any) -> str:
    """``line`` with ``DELIMITER`` between MeCab words; removing it gives ``line`` back."""
    line = line.replace(DELIMITER, "")
    parts = []
    for index, word in enumerate(tagger(line)):
        parts.append((DELIMITER if index else "") + word.white_space + word.surface)
    joined = "".join(parts)
    # MeCab drops trailing whitespace (and, rarely, characters it cannot read): keep the line whole
    return joined if joined.replace(DELIMITER, "") == line else _with_tail(joined, line)


def _with_tail(joined: str, line: str) -> str:
    plain = joined.replace(DELIMITER, "")
    return joined + line[len(plain):] if line.startswith(plain) else line


def _split_chunk(lines: list[str], dictionary: str) -> list[str]:
    tagger = mecab_tagger(dictionary)
    return [split_words(line, tagger) for line in lines]


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def split_corpus(lines: Iterable[str], dictionary: str = "unidic-lite", workers: int = 0,
                 total: int | None = None) -> Iterator[str]:
    """Every line split into words, in order, by a pool of ``workers`` processes (0: one per core),
    with a progress bar on stderr."""
    from tqdm import tqdm

    workers = workers or max(1, len(os.sched_getaffinity(0)))
    progress = tqdm(total=total, unit=" lines", desc="MeCab 分かち書き", mininterval=2.0)
    try:
        if workers == 1:
            for chunk in _chunks(lines, CHUNK_LINES):
                yield from _split_chunk(chunk, dictionary)
                progress.update(len(chunk))
            return
        with ProcessPoolExecutor(workers) as pool:
            in_flight: deque[Future[list[str]]] = deque()  # bounded: a corpus never sits in memory whole
            for chunk in _chunks(lines, CHUNK_LINES):
                in_flight.append(pool.submit(_split_chunk, chunk, dictionary))
                if len(in_flight) >= 4 * workers:
                    yield from _drain(in_flight.popleft(), progress)
            while in_flight:
                yield from _drain(in_flight.popleft(), progress)
    finally:
        progress.close()


def _drain(future: Future[list[str]], progress: Any) -> list[str]:
    split = future.result()
    progress.update(len(split))
    return split
