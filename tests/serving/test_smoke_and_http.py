"""The HTTP helpers and the smoke check (a replica's startup probe) against a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tanuki_serving.net import free_port, http_get, http_post
from tanuki_serving.smoke import check


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._answer(200 if self.path == "/health" else 503, b"ok")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/chat/completions":
            request = json.loads(body)
            content = "" if request["messages"][0]["content"] == "silence" else "はい"
            if self.headers.get("Authorization") != "Bearer key":
                self._answer(401, b"")
                return
            self._answer(200, json.dumps({"choices": [{"message": {"content": content}}]}).encode())
            return
        self._answer(400 if self.path == "/refuse" else 200,
                     f"{self.headers.get('Content-Type')} {body.decode()}".encode())

    def _answer(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_get_returns_the_body_only_on_success_and_zero_when_nothing_answers(server: str) -> None:
    assert http_get(f"{server}/health") == (200, "ok")
    assert http_get(f"{server}/metrics") == (503, "")
    assert http_get(f"http://127.0.0.1:{free_port()}/health", timeout=1) == (0, "")
    assert http_get("not a url") == (0, "")


def test_post_sends_json_and_returns_any_answer_or_why_nothing_did(server: str) -> None:
    assert http_post(f"{server}/add_worker?url=x") == (200, "application/json ")
    assert http_post(f"{server}/refuse", {"a": 1}) == (400, 'application/json {"a": 1}')
    status, why = http_post(f"http://127.0.0.1:{free_port()}/add_worker", timeout=1)
    assert status == 0 and why


def test_smoke_check_passes_answers_and_names_the_first_prompt_that_fails(server: str) -> None:
    assert check(server, "m", "key", ["日本の首都は？", "こんにちは"]) is None
    assert check(server, "m", "key", ["こんにちは", "silence"]) == "'silence' → empty answer"
    assert check(server, "m", "wrong", ["こんにちは"]) == "'こんにちは' → HTTP 401"
    assert "ConnectError" in (check(f"http://127.0.0.1:{free_port()}", "m", None, ["hi"], timeout=1) or "")
