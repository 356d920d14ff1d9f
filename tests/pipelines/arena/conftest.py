"""An arena app on a fresh SQLite database, in front of scripted OpenAI-compatible models (a real
HTTP server on a local port answering ``/<model>/v1/chat/completions`` with a server-sent-event
stream, as vLLM does)."""

from __future__ import annotations

import asyncio
import json
import threading
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
    """Scripted models behind one aiohttp server (in a thread of its own): each answers
    ``answer(model, messages)`` in a few stream chunks; ``broken`` models stop mid-answer, ``refusing``
    ones answer HTTP 503; every request is kept. ``headers_delay``: seconds before the reply starts (a busy server);
    ``first_piece_delay``: seconds between the reply's start and its first piece (the first token)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.broken: set[str] = set()
        self.refusing: set[str] = set()
        self.answer: Callable[[str, list[dict[str, str]]], str] = \
            lambda model, messages: f"{len(messages)}通目への回答です。よろしくお願いします。"
        self.headers_delay = 0.0
        self.first_piece_delay = 0.0
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def base_url(self, model: str) -> str:
        return f"http://127.0.0.1:{self.port}/{model}/v1"

    def events(self, model: str, messages: list[dict[str, str]]) -> list[bytes]:
        text = self.answer(model, messages)
        pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
        events = [{"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]} for piece in pieces]
        if model in self.broken:
            events = events[:1]  # the server dies after the first chunk: no finish, no [DONE]
        else:
            events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        lines = [f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode() for event in events]
        return lines if model in self.broken else [*lines, b"data: [DONE]\n\n"]

    async def chat(self, request: Any) -> Any:
        from aiohttp import web

        model = request.match_info["model"]
        body = await request.json()
        self.requests.append({**body, "model": model})
        assert body["model"] == f"served-{model}" and body["stream"] is True
        await asyncio.sleep(self.headers_delay)
        if model in self.refusing:
            return web.Response(status=503, text="overloaded")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(self.first_piece_delay)
        for event in self.events(model, body["messages"]):
            await response.write(event)
        await response.write_eof()
        return response

    def start(self) -> None:
        from aiohttp import web

        async def serve() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/{model}/v1/chat/completions", self.chat)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            return runner

        self.thread.start()
        self.runner = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def arena_config(tmp_path: Path, models: Models, **fields: Any) -> ArenaServeConfig:
    contestants = [{"name": name, "base_url": models.base_url(name), "model": f"served-{name}"} for name in MODELS]
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
def models() -> Iterator[Models]:
    models = Models()
    models.start()
    yield models
    models.stop()


@pytest.fixture
def make_client(tmp_path: Path, models: Models) -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(**fields: Any) -> TestClient:
        config = arena_config(tmp_path, models, **fields)
        engine = open_database(database_url(config.database_url, tmp_path))
        client = TestClient(create_app(config, engine), base_url="http://arena.test")
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
