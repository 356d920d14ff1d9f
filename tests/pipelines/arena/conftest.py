"""An arena app on a fresh SQLite database, in front of scripted OpenAI-compatible models (httpx's
MockTransport answering ``/chat/completions`` with a server-sent-event stream, as vLLM does)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tanuki_pipelines.arena.app import CSRF_COOKIE, CSRF_HEADER, create_app
from tanuki_pipelines.arena.config import ArenaServeConfig
from tanuki_pipelines.votes.database import database_url, open_database

MODELS = ["alpha", "beta", "gamma"]


class Models:
    """Scripted models: each answers ``answer(model, messages)`` in a few stream chunks; ``broken``
    models stop mid-answer. Every request is kept."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.broken: set[str] = set()
        self.answer: Callable[[str, list[dict[str, str]]], str] = \
            lambda model, messages: f"{len(messages)}通目への回答です。よろしくお願いします。"

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        model = request.url.host.split(".")[0]
        self.requests.append({**body, "model": model})
        assert body["model"] == f"served-{model}" and body["stream"] is True
        text = self.answer(model, body["messages"])
        pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
        events = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in pieces]
        if model in self.broken:
            events = events[:1]  # the server dies after the first chunk: no finish, no [DONE]
        else:
            events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        lines = "".join(f"data: {json.dumps(event, ensure_ascii=False)}\n\n" for event in events)
        if model not in self.broken:
            lines += "data: [DONE]\n\n"
        return httpx.Response(200, content=lines.encode(), headers={"content-type": "text/event-stream"})


def arena_config(tmp_path: Path, **fields: Any) -> ArenaServeConfig:
    contestants = [{"name": name, "base_url": f"http://{name}.models/v1", "model": f"served-{name}"} for name in MODELS]
    return ArenaServeConfig.model_validate({"contestants": contestants, "seed": 0,
                                            "database_url": f"sqlite:///{tmp_path / 'arena.db'}",
                                            "ratings": {"bootstrap_rounds": 20, "min_battles": 1}, **fields})


class Voter:
    """One person's browser: identity header, the page's CSRF cookie echoed as the header."""

    def __init__(self, client: TestClient, name: str) -> None:
        self.client, self.name = client, name
        self.headers = {"X-Forwarded-User": name}
        page = client.get("/", headers=self.headers)
        assert page.status_code == 200, page.text
        self.csrf = page.cookies[CSRF_COOKIE]

    def post(self, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.client.post(path, json=body, headers={**self.headers, CSRF_HEADER: self.csrf, **headers})

    def get(self, path: str) -> httpx.Response:
        return self.client.get(path, headers=self.headers)

    def stream(self, battle: str, side: str, turn: int = 1) -> list[dict[str, Any]]:
        response = self.get(f"/api/battles/{battle}/answer/{side}?turn={turn}")
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    def battle(self, question: str = "日本の首都はどこですか?") -> str:
        created = self.post("/api/battles", {"question": question})
        assert created.status_code == 200, created.text
        return created.json()["battle_id"]

    def answered_battle(self, question: str = "日本の首都はどこですか?") -> str:
        battle = self.battle(question)
        for side in "ab":
            assert self.stream(battle, side)[-1] == {"done": True}
        return battle


@pytest.fixture
def models() -> Models:
    return Models()


@pytest.fixture
def make_client(tmp_path: Path, models: Models) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(**fields: Any) -> TestClient:
        config = arena_config(tmp_path, **fields)
        engine = open_database(database_url(config.database_url, tmp_path))
        client = TestClient(create_app(config, engine, transport=httpx.MockTransport(models.handle)),
                            base_url="http://arena.test")
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
