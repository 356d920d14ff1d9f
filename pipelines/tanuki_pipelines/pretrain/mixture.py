"""Deterministic data mixture: which source and which packed sequence each sample of a step uses.

The choice of sources for step ``s`` depends only on (seed, s) and the phase weights at that point
of the run; the position inside each source is a per-source counter walked through a per-epoch
permutation (``shuffle``: in memory for small sources, a keyed bijection for large ones).
The counters are the whole state, saved in every checkpoint, so a resumed run sees exactly the
samples an uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tanuki_pipelines.pretrain.config import DataConfig
from tanuki_pipelines.pretrain.shuffle import IN_MEMORY_LIMIT, epoch_permutation


def weights_at(data: DataConfig, fraction: float) -> dict[str, float]:
    """Normalised source weights at ``fraction`` of the run (linear between phase keyframes)."""
    names = [source.name for source in data.sources]
    if not data.phases:
        raw = {source.name: source.weight for source in data.sources}
    else:
        raw = _interpolate(data, fraction, names)
    total = sum(raw.values())
    return {name: raw.get(name, 0.0) / total for name in names}


def _interpolate(data: DataConfig, fraction: float, names: list[str]) -> dict[str, float]:
    phases = data.phases

    def vector(index: int) -> dict[str, float]:
        weights = phases[index].weights
        total = sum(weights.values())
        return {name: weights.get(name, 0.0) / total for name in names}

    if fraction <= phases[0].at:
        return vector(0)
    for index in range(1, len(phases)):
        if fraction <= phases[index].at:
            left, right = phases[index - 1].at, phases[index].at
            t = 0.0 if right == left else (fraction - left) / (right - left)
            a, b = vector(index - 1), vector(index)
            return {name: (1 - t) * a[name] + t * b[name] for name in names}
    return vector(len(phases) - 1)


@dataclass
class MixtureSampler:
    """Yields ``(source_index, sequence_index)`` pairs for each optimizer step's global batch."""

    data: DataConfig
    sizes: list[int]
    """Packed sequences available in each source (same order as ``data.sources``)."""
    total_steps: int
    global_batch: int
    seed: int
    consumed: list[int] = field(default_factory=list)
    """Sequences drawn so far from each source (the sampler's whole state)."""
    in_memory_limit: int = IN_MEMORY_LIMIT
    """Sources above this many sequences are shuffled without a permutation array (``shuffle``)."""
    _permutations: dict[int, tuple[int, Any]] = field(default_factory=dict, repr=False)
    """source → (epoch, permutation of that epoch); only the current epoch is kept."""

    def __post_init__(self) -> None:
        if not self.consumed:
            self.consumed = [0] * len(self.sizes)

    def step_batch(self, step: int) -> list[tuple[int, int]]:
        """The global batch of ``step``; advances the counters (call once per step, in order)."""
        weights = weights_at(self.data, step / self.total_steps)
        probabilities = np.array([weights[source.name] for source in self.data.sources])
        for index, size in enumerate(self.sizes):
            if size == 0:
                probabilities[index] = 0.0
        probabilities /= probabilities.sum()
        rng = np.random.default_rng([self.seed, step])
        choices = rng.choice(len(self.sizes), size=self.global_batch, p=probabilities)
        batch = []
        for source_index in choices.tolist():
            batch.append((source_index, self._next_index(source_index)))
        return batch

    def _next_index(self, source_index: int) -> int:
        drawn = self.consumed[source_index]
        self.consumed[source_index] = drawn + 1
        size = self.sizes[source_index]
        epoch, offset = divmod(drawn, size)
        cached = self._permutations.get(source_index)
        if cached is None or cached[0] != epoch:
            cached = (epoch, epoch_permutation(size, self.seed, source_index, epoch, self.in_memory_limit))
            self._permutations[source_index] = cached
        return int(cached[1][offset])

    def state_dict(self) -> dict[str, list[int]]:
        return {"consumed": list(self.consumed)}

    def load_state_dict(self, state: dict[str, list[int]]) -> None:
        if len(state["consumed"]) != len(self.sizes):
            raise ValueError("checkpoint was written with a different number of data sources")
        self.consumed = list(state["consumed"])
