"""Duplicate keys of a document: its exact key (a hash of the text) and its MinHash band keys.

Two documents that share a key are candidates of one duplicate cluster: the same exact key means the
same text; the same band key means ``rows`` MinHash values in a row agree, which for Jaccard
similarity J happens in at least one of ``bands`` bands with probability 1 − (1 − J^rows)^bands
(datasketch's choice of bands and rows for the threshold). Signatures are datasketch's MinHash over
character shingles, with one seed and permutation set for every worker, so a key does not depend
on where it was computed.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tanuki_pipelines.curate.config import NearDedup

WHITESPACE = re.compile(r"\s+")
EXACT = 0
NEAR = 1
"""Kinds of key (and of the duplicate edges found through them)."""


def exact_key(text: str) -> int:
    """64-bit key of the text with its whitespace runs collapsed."""
    flat = WHITESPACE.sub(" ", text).strip().encode("utf-8")
    return int.from_bytes(hashlib.blake2b(flat, digest_size=8, person=b"tanuki-exact").digest(), "little")


def shingles(text: str, width: int) -> list[bytes]:
    """The distinct character ``width``-grams of the text (whitespace runs as one space)."""
    flat = WHITESPACE.sub(" ", text).strip()
    return list({flat[i:i + width].encode("utf-8") for i in range(max(len(flat) - width + 1, 1))})


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

        signature = MinHash(num_perm=self.settings.num_perm, seed=self.settings.seed,
                            permutations=self._template.permutations, scheme=self._template.scheme)
        signature.update_batch(shingles(text, self.settings.shingle_chars))
        return signature.hashvalues

    def __call__(self, text: str) -> list[int]:
        values = self.signature(text)
        keys = []
        for band in range(self.bands):
            rows = values[band * self.rows:(band + 1) * self.rows].tobytes()
            digest = hashlib.blake2b(rows, digest_size=8, person=b"tanuki-band" + bytes([band])).digest()
            keys.append(int.from_bytes(digest, "little"))
        return keys
