"""The arena's Prometheus metrics (its own registry: two apps in one process do not collide)."""

from __future__ import annotations

from typing import Any


class ArenaMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.battles = Counter("tanuki_arena_battles", "Battles started", registry=self.registry)
        self.failed = Counter("tanuki_arena_failed_battles", "Battles a model failed mid-answer", registry=self.registry)
        self.votes = Counter("tanuki_arena_votes", "Votes recorded", ["evaluation"], registry=self.registry)
        self.first_token = Histogram("tanuki_arena_first_token_seconds", "Time to an answer's first text",
                                     registry=self.registry)
        self.answer = Histogram("tanuki_arena_answer_seconds", "Time to a whole answer", registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body: Any = generate_latest(self.registry)
        return body, CONTENT_TYPE_LATEST
