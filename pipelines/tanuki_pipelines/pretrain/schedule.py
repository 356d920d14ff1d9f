"""Learning-rate schedule (pure): linear warmup, then cosine decay to ``min_lr``."""

from __future__ import annotations

import math

from tanuki_pipelines.pretrain.config import TrainConfig


def learning_rate(step: int, train: TrainConfig) -> float:
    """Learning rate used by optimizer step ``step`` (0-based)."""
    if train.warmup_steps and step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    decay_steps = max(1, train.steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return train.min_lr + (train.lr - train.min_lr) * cosine
