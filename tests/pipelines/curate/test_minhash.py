"""Duplicate keys: the same on every worker, shared by near duplicates, not by distinct texts."""

from __future__ import annotations

import random

from tanuki_pipelines.curate.config import NearDedup
from tanuki_pipelines.curate.minhash import BandKeys, exact_key, shingle_hashes

CHARS = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん日本語文章"


def text(rng: random.Random, length: int = 300) -> str:
    return "".join(rng.choice(CHARS) for _ in range(length))


def shingles(text: str, width: int = 5) -> set[str]:
    return {text[i:i + width] for i in range(len(text) - width + 1)}


def test_a_shingle_hashes_the_same_wherever_it_stands_and_different_shingles_differ() -> None:
    assert list(shingle_hashes("abcdeXabcde", 5)) == [*shingle_hashes("abcde", 5), *shingle_hashes("bcdeX", 5),
                                                      *shingle_hashes("cdeXa", 5), *shingle_hashes("deXab", 5),
                                                      *shingle_hashes("eXabc", 5), *shingle_hashes("Xabcd", 5),
                                                      *shingle_hashes("abcde", 5)]
    assert list(shingle_hashes("a \n\t b  c", 3)) == list(shingle_hashes("a b c", 3))  # whitespace runs are one space
    assert len(shingle_hashes("ab", 5)) == len(shingle_hashes("", 5)) == 1  # shorter than a shingle: one
    assert len({*shingle_hashes("ab", 5), *shingle_hashes("abc", 5), *shingle_hashes("", 5)}) == 3
    sample = text(random.Random(2), 2000)
    assert len(set(shingle_hashes(sample, 5))) == len(shingles(sample))  # no collisions among ~2,000


def test_keys_do_not_depend_on_the_instance_that_computes_them() -> None:
    sample = text(random.Random(1))
    assert BandKeys(NearDedup())(sample) == BandKeys(NearDedup())(sample)
    assert BandKeys(NearDedup(seed=2))(sample) != BandKeys(NearDedup())(sample)
    assert exact_key("a  b\nc") == exact_key("a b c") != exact_key("a b d")


def test_near_duplicates_share_a_band_and_distinct_texts_do_not() -> None:
    rng = random.Random(3)
    keys = BandKeys(NearDedup())
    assert (keys.bands, keys.rows) == (11, 11)  # 0.8 with the recall-weighted default
    found = distinct = 0
    for _ in range(100):
        original = text(rng)
        chars = list(original)
        chars[rng.randrange(len(chars))] = rng.choice(CHARS)  # one character replaced: Jaccard ≈ 0.97
        copy = "".join(chars)
        a, b = shingles(original), shingles(copy)
        assert len(a & b) / len(a | b) > 0.9
        found += bool(set(keys(original)) & set(keys(copy)))
        distinct += bool(set(keys(original)) & set(keys(text(rng))))
    assert found >= 98 and distinct == 0
