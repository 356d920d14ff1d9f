"""The ``evaluation`` values the arena writes (no imports: recipe models use them as defaults)."""

from __future__ import annotations

from typing import Literal

Winner = Literal["model_a", "model_b", "tie", "tie (bothbad)"]
"""A battle's outcome as FastChat's battle logs name it."""
EVALUATIONS: dict[str, Winner] = {"A": "model_a", "B": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}
"""``evaluation`` → FastChat winner: the left answer (``model_1``) better, the right one, a tie,
both bad. The import's default ``vote_codes``, so an export round-trips with no configuration."""
