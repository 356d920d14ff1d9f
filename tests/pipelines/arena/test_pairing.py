"""Which pair a battle draws (the fewest battles first, sides at random) and which answers reveal a model."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tanuki_pipelines.arena.pairing import all_pairs, draw, names_a_model

MODELS = ["a", "b", "c", "d"]


@pytest.mark.parametrize(("counts", "allowed"), [
    ({}, set(all_pairs(MODELS))),
    ({("a", "b"): 3, ("a", "c"): 3, ("a", "d"): 3, ("b", "c"): 3, ("b", "d"): 3}, {("c", "d")}),
    ({("a", "b"): 1, ("a", "c"): 1, ("a", "d"): 1, ("b", "c"): 1}, {("b", "d"), ("c", "d")}),
])
def test_the_pair_with_the_fewest_battles_is_drawn(counts: dict, allowed: set) -> None:
    rng = random.Random(0)
    drawn = {tuple(sorted(draw(MODELS, counts, rng))) for _ in range(200)}
    assert drawn == allowed


def test_sides_are_a_coin_toss_and_a_run_of_draws_stays_balanced() -> None:
    rng = random.Random(1)
    counts: Counter = Counter()
    left: Counter = Counter()
    for _ in range(600):
        pair = draw(MODELS, counts, rng)
        counts[tuple(sorted(pair))] += 1
        left[pair[0]] += 1
    assert set(counts.values()) == {100}
    assert all(120 < left[model] < 180 for model in MODELS)  # each model is on the left about half its 300 battles


@pytest.mark.parametrize(("answer", "named"), [
    ("私は ChatGPT です。", "ChatGPT"),
    ("I was trained by openai.", "OpenAI"),
    ("こんにちは、tanuki-8b です", "tanuki-8b"),
    ("東京は日本の首都です。", None),
])
def test_an_answer_naming_a_model(answer: str, named: str | None) -> None:
    assert names_a_model(answer, ["tanuki-8b", "ChatGPT", "OpenAI"]) == named
