"""Which two models a new battle pits against each other, and on which side each stands (pure).

Balanced: the pair drawn is one of those with the fewest battles so far (ties broken at random),
so every pair gathers votes at the same pace whatever the traffic; the sides are a coin toss.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping


def all_pairs(models: list[str]) -> list[tuple[str, str]]:
    """Every unordered pair, each in a fixed (sorted) order."""
    return [tuple(sorted(pair)) for pair in itertools.combinations(models, 2)]  # type: ignore[misc]


def draw(models: list[str], battles_per_pair: Mapping[tuple[str, str], int], rng: random.Random) -> tuple[str, str]:
    """(left model, right model) of the next battle."""
    pairs = all_pairs(models)
    fewest = min(battles_per_pair.get(pair, 0) for pair in pairs)
    left, right = rng.choice([pair for pair in pairs if battles_per_pair.get(pair, 0) == fewest])
    return (left, right) if rng.random() < 0.5 else (right, left)


def names_a_model(answer: str, names: list[str]) -> str | None:
    """The first of ``names`` the answer mentions (case-insensitive), or None. FastChat leaves such
    battles out of its ratings: a voter who learns who answered is no longer blind."""
    folded = answer.casefold()
    return next((name for name in names if name and name.casefold() in folded), None)
