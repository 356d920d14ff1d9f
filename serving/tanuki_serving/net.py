"""Small network helpers: a free local port, and JSON over HTTP that reports failure as a value
(the benchmarks, the demo's preflight and tests use them)."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]  # an AF_INET address is (host, port)
        return port


def http_get(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a GET; the body only on success; (0, "") when nothing answers."""
    try:
        response = httpx.get(url, timeout=timeout, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL):
        return 0, ""
    return response.status_code, response.text if response.is_success else ""


def http_post(url: str, body: dict[str, Any] | None = None, timeout: float = 60.0,
              headers: dict[str, str] | None = None) -> tuple[int, str]:
    """(status, body) of a JSON POST (an empty body without ``body``); (0, why) when nothing answers."""
    content = json.dumps(body).encode() if body is not None else b""
    try:
        response = httpx.post(url, content=content, timeout=timeout,
                              headers={"Content-Type": "application/json", **(headers or {})})
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return 0, str(exc)
    return response.status_code, response.text
