"""Waiting helpers shared by the kopf integration tests and the local kubelet's tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def eventually(check: Callable[[], Any], timeout: float = 15) -> Any:
    """Poll an async check until it returns something truthy (fails the test after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, "the operator did not get there in time"
        await asyncio.sleep(0.05)
    return result


async def get(api, path: str) -> dict[str, Any] | None:
    """The object at ``path``, or None when the API answers anything but 200."""
    status, body = await api.get(path)
    return body if status == 200 else None


def run_until(kubelet: Any, done: Callable[[], Any], timeout: float = 60.0) -> None:
    """Kubelet passes until ``done()`` holds (fails the test after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        kubelet.sync()
        time.sleep(0.05)
