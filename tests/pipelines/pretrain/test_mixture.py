"""The data mixture: phase interpolation, determinism, resumable state, epoch coverage."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tanuki_pipelines.pretrain.config import DataConfig
from tanuki_pipelines.pretrain.mixture import MixtureSampler, weights_at


def data_config(phases: list | None = None) -> DataConfig:
    return DataConfig(
        sources=[{"name": "ja", "path": Path("ja"), "weight": 3}, {"name": "en", "path": Path("en"), "weight": 2},
                 {"name": "synth", "path": Path("synth"), "weight": 0}],
        phases=phases or [],
    )


LATE_SYNTH = [
    {"at": 0.0, "weights": {"ja": 3, "en": 2, "synth": 0}},
    {"at": 0.8, "weights": {"ja": 3, "en": 2, "synth": 0}},
    {"at": 1.0, "weights": {"ja": 3, "en": 2, "synth": 5}},
]


def test_weights_without_phases_are_source_weights() -> None:
    assert weights_at(data_config(), 0.5) == pytest.approx({"ja": 0.6, "en": 0.4, "synth": 0.0})


def test_synthetic_share_zero_until_80_percent_then_ramps() -> None:
    config = data_config(LATE_SYNTH)
    assert weights_at(config, 0.0)["synth"] == 0
    assert weights_at(config, 0.8)["synth"] == 0
    assert weights_at(config, 0.9)["synth"] == pytest.approx(0.25)
    assert weights_at(config, 1.0)["synth"] == pytest.approx(0.5)
    assert weights_at(config, 0.9)["ja"] / weights_at(config, 0.9)["en"] == pytest.approx(1.5)


def sampler(config: DataConfig, sizes=(50, 40, 30), seed: int = 0) -> MixtureSampler:
    return MixtureSampler(data=config, sizes=list(sizes), total_steps=100, global_batch=16, seed=seed)


def test_sampler_follows_phases() -> None:
    mixture = sampler(data_config(LATE_SYNTH))
    early = Counter(s for step in range(80) for s, _ in mixture.step_batch(step))
    late = Counter(s for step in range(80, 100) for s, _ in mixture.step_batch(step))
    assert early[2] == 0 and late[2] > 0
    assert early[0] / early[1] == pytest.approx(1.5, rel=0.15)


def test_sampler_is_deterministic_and_resumable() -> None:
    config = data_config(LATE_SYNTH)
    straight = sampler(config)
    expected = [straight.step_batch(step) for step in range(100)]
    first = sampler(config)
    for step in range(37):
        assert first.step_batch(step) == expected[step]
    resumed = sampler(config)
    resumed.load_state_dict(first.state_dict())
    assert [resumed.step_batch(step) for step in range(37, 100)] == expected[37:]
    assert sampler(config, seed=1).step_batch(0) != expected[0]


def test_each_epoch_visits_every_sequence_once() -> None:
    mixture = MixtureSampler(data=data_config(), sizes=[7, 5, 1], total_steps=10, global_batch=35, seed=3)
    batch = mixture.step_batch(0)
    per_source = {s: [i for src, i in batch if src == s] for s in (0, 1)}
    for source, size in ((0, 7), (1, 5)):
        drawn = per_source[source]
        full_epochs = len(drawn) // size
        for epoch in range(full_epochs):
            assert sorted(drawn[epoch * size:(epoch + 1) * size]) == list(range(size))


@pytest.mark.parametrize("size", [1, 2, 3, 17, 1000, 4097])
def test_the_large_source_shuffle_is_a_seeded_bijection(size: int) -> None:
    from tanuki_pipelines.pretrain.shuffle import epoch_permutation

    order = epoch_permutation(size, seed=5, source=1, epoch=0, in_memory_limit=0)
    drawn = [order[i] for i in range(size)]
    assert sorted(drawn) == list(range(size))
    assert drawn == [epoch_permutation(size, 5, 1, 0, in_memory_limit=0)[i] for i in range(size)]
    if size > 16:
        assert drawn != list(range(size))
        assert drawn != [epoch_permutation(size, 5, 1, 1, in_memory_limit=0)[i] for i in range(size)]
    with pytest.raises(IndexError):
        order[size]


def test_small_sources_keep_their_order_from_before_the_token_store() -> None:
    import numpy as np

    from tanuki_pipelines.pretrain.shuffle import epoch_permutation

    expected = np.random.default_rng([3, 1_000_003, 2, 4]).permutation(50)
    assert epoch_permutation(50, seed=3, source=2, epoch=4).tolist() == expected.tolist()


def test_a_sampler_over_large_sources_visits_each_sequence_once_per_epoch_and_resumes() -> None:
    config = data_config()

    def large(seed: int = 3) -> MixtureSampler:
        return MixtureSampler(data=config, sizes=[7, 5, 1], total_steps=10, global_batch=35, seed=seed,
                              in_memory_limit=0)

    batch = large().step_batch(0)
    for source, size in ((0, 7), (1, 5)):
        drawn = [i for s, i in batch if s == source]
        for epoch in range(len(drawn) // size):
            assert sorted(drawn[epoch * size:(epoch + 1) * size]) == list(range(size))
    straight = large()
    expected = [straight.step_batch(step) for step in range(10)]
    first = large()
    [first.step_batch(step) for step in range(4)]
    resumed = large()
    resumed.load_state_dict(first.state_dict())
    assert [resumed.step_batch(step) for step in range(4, 10)] == expected[4:]
