"""Per-epoch shuffles of a source's packed sequences, in memory that does not grow with the corpus.

A source of up to ``IN_MEMORY_LIMIT`` sequences is shuffled as it always was, by NumPy's
permutation seeded by (seed, source, epoch): runs and checkpoints made before the token store keep
their exact sample order. A larger source (1.3T tokens in 4k-token sequences is ~3·10⁸ of them,
2.5 GB as a permutation array) is shuffled by a keyed bijection of [0, n) instead, computed per
index: a four-round Feistel network on the smallest even number of bits covering n, with round keys
drawn from the same seeded generator, walked until the result falls below n (fewer than four steps
on average, since the domain is under 4n). Its state is the seed alone, so it needs no memory and
no file, and the sampler's counters remain the whole resume state.
"""

from __future__ import annotations

import numpy as np

IN_MEMORY_LIMIT = 1 << 22
"""Sources with at most this many sequences use an in-memory permutation (32 MB of int64)."""
MASK64 = (1 << 64) - 1


def _mix(value: int, key: int) -> int:
    """A 64-bit hash of ``value`` under ``key`` (the SplitMix64 finaliser)."""
    z = (value ^ key) * 0x9E3779B97F4A7C15 & MASK64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK64
    return z ^ (z >> 31)


class FeistelPermutation:
    """A seeded bijection of ``range(size)``: ``permutation[i]`` for any ``i``, in O(1) memory."""

    def __init__(self, size: int, keys: list[int]) -> None:
        self.size = size
        bits = max(2, (size - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = (1 << self.half) - 1
        self.keys = keys

    def _encrypt(self, value: int) -> int:
        left, right = value >> self.half, value & self.mask
        for key in self.keys:
            left, right = right, left ^ (_mix(right, key) & self.mask)
        return (left << self.half) | right

    def __getitem__(self, index: int) -> int:
        if not 0 <= index < self.size:
            raise IndexError(index)
        value = self._encrypt(index)
        while value >= self.size:  # cycle-walking keeps a bijection of [0, size)
            value = self._encrypt(value)
        return value

    def __len__(self) -> int:
        return self.size


def epoch_permutation(size: int, seed: int, source: int, epoch: int,
                      in_memory_limit: int = IN_MEMORY_LIMIT) -> np.ndarray | FeistelPermutation:
    """The order in which epoch ``epoch`` of source ``source`` visits its ``size`` sequences."""
    rng = np.random.default_rng([seed, 1_000_003, source, epoch])
    if size <= in_memory_limit:
        return rng.permutation(size)
    return FeistelPermutation(size, [int(key) for key in rng.integers(0, 2**63, size=4)])
