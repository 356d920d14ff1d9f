"""Duplicate keys of a document: its exact key (a hash of the text) and its MinHash band keys.

Two documents that share a key are candidates of one duplicate cluster: the same exact key means the
same text; the same band key means ``rows`` MinHash values in a row agree, which for Jaccard
similarity J happens in at least one of ``bands`` bands with probability 1 − (1 − J^rows)^bands
(datasketch's choice of bands and rows for the threshold). Signatures are datasketch's MinHash over
character shingles, with one seed and permutation set for every worker, so a key does not depend
on where it was computed.

The shingles reach datasketch already hashed: a polynomial hash of their code points, finished with
MurmurHash3's 64-bit mixer, computed for a whole text at once in numpy. Its default (SHA-1 of each
shingle's bytes, one Python call per shingle) was four fifths of a kept document's time.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from tanuki_pipelines.curate.config import NearDedup

WHITESPACE = re.compile(r"\s+")
EXACT = 0
NEAR = 1
"""Kinds of key (and of the duplicate edges found through them)."""


def exact_key(text: str) -> int:
    """64-bit key of the text with its whitespace runs collapsed."""
    flat = WHITESPACE.sub(" ", text).strip().encode("utf-8")
    return int.from_bytes(hashlib.blake2b(flat, digest_size=8, person=b"tanuki-exact").digest(), "little")


MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
"""Odd 64-bit constant of the polynomial over a shingle's code points (arithmetic wraps mod 2**64)."""


def _mix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's fmix64 finaliser: every input bit reaches every output bit."""
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xFF51AFD7ED558CCD)
    values = values ^ (values >> np.uint64(33))
    values = values * np.uint64(0xC4CEB9FE1A85EC53)
    return values ^ (values >> np.uint64(33))


def shingle_hashes(text: str, width: int) -> np.ndarray:
    """32-bit hashes of the character ``width``-grams of the text (whitespace runs as one space; a
    text shorter than ``width`` is one shingle). Repeats are kept: they do not change a minimum."""
    flat = WHITESPACE.sub(" ", text).strip()
    points = np.frombuffer(flat.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    count = max(len(points) - width + 1, 1)
    hashes = np.full(count, width, dtype=np.uint64)
    for offset in range(min(width, len(points))):
        hashes = hashes * MULTIPLIER + points[offset:offset + count]
    return (_mix64(hashes) >> np.uint64(32)).astype(np.uint32)


class BandKeys:
    """The LSH band keys of texts under one ``near_dedup`` setting."""

    def __init__(self, settings: NearDedup) -> None:
        from datasketch import MinHash
        from datasketch.lsh import _optimal_param

        self.settings = settings
        self.bands, self.rows = _optimal_param(settings.threshold, settings.num_perm,
                                               1 - settings.false_negative_weight, settings.false_negative_weight)
        self._template = MinHash(num_perm=settings.num_perm, seed=settings.seed)

    def signature(self, text: str) -> Any:
        from datasketch import MinHash

        signature = MinHash(num_perm=self.settings.num_perm, seed=self.settings.seed, hashfunc=int,
                            permutations=self._template.permutations, scheme=self._template.scheme)
        signature.update_batch(shingle_hashes(text, self.settings.shingle_chars))
        return signature.hashvalues

    def __call__(self, text: str) -> list[int]:
        values = self.signature(text)
        keys = []
        for band in range(self.bands):
            rows = values[band * self.rows:(band + 1) * self.rows].tobytes()
            digest = hashlib.blake2b(rows, digest_size=8, person=b"tanuki-band" + bytes([band])).digest()
            keys.append(int.from_bytes(digest, "little"))
        return keys
