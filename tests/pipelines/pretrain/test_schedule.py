from __future__ import annotations

import math
from itertools import pairwise

import pytest

from tanuki_pipelines.pretrain.config import TrainConfig
from tanuki_pipelines.pretrain.schedule import learning_rate


def test_warmup_then_cosine_to_min() -> None:
    train = TrainConfig(steps=100, lr=1e-3, min_lr=1e-4, warmup_steps=10)
    assert learning_rate(0, train) == pytest.approx(1e-4)
    assert learning_rate(9, train) == pytest.approx(1e-3)
    assert learning_rate(10, train) == pytest.approx(1e-3)
    midway = 10 + 45
    assert learning_rate(midway, train) == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert learning_rate(100, train) == pytest.approx(1e-4)
    rates = [learning_rate(step, train) for step in range(10, 101)]
    assert all(a >= b for a, b in pairwise(rates))


def test_no_warmup_starts_at_peak() -> None:
    train = TrainConfig(steps=10, lr=2e-3, min_lr=0.0)
    assert learning_rate(0, train) == pytest.approx(2e-3)
