"""Duplicate keys: the same on every worker, shared by near duplicates, not by distinct texts."""

from __future__ import annotations

import random

from tanuki_pipelines.curate.config import NearDedup
from tanuki_pipelines.curate.minhash import BandKeys, exact_key, shingles

CHARS = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん日本語文章"


def text(rng: random.Random, length: int = 300) -> str:
    return "".join(rng.choice(CHARS) for _ in range(length))


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
        a, b = set(shingles(original, 5)), set(shingles(copy, 5))
        assert len(a & b) / len(a | b) > 0.9
        found += bool(set(keys(original)) & set(keys(copy)))
        distinct += bool(set(keys(original)) & set(keys(text(rng))))
    assert found >= 98 and distinct == 0
