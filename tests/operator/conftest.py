"""Fixtures for operator tests: a hardened kmock emulator on a free port, a kubeconfig for it,
and a small HTTP helper for test code.

pytest-asyncio runs in its default strict mode here: async fixtures use ``pytest_asyncio.fixture``
and async test modules set ``pytestmark = pytest.mark.asyncio``. kmock's pytest plugin (loaded by
its entry point) only adds a ``kmock`` fixture that these tests do not use.
"""
from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock
import pytest
import pytest_asyncio
import yaml
from emulator import JSON_PATCH, MERGE_PATCH, HardenedEmulator  # pytest puts tests/operator on sys.path


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[HardenedEmulator]:
    """The emulator served on 127.0.0.1 at a free port for one test."""
    async with HardenedEmulator() as emu, kmock.Server(emu, host='127.0.0.1'):
        yield emu
        await emu.close_watches()  # otherwise the server's shutdown waits for open watches


@pytest.fixture
def kubeconfig(emulator: HardenedEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kubeconfig pointing at the emulator, set as $KUBECONFIG for this test."""
    path = tmp_path / 'kubeconfig'
    path.write_text(yaml.safe_dump({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'emulator',
        'clusters': [{'name': 'emulator', 'cluster': {'server': str(emulator.url).rstrip('/')}}],
        'users': [{'name': 'tester', 'user': {'token': 'emulator-token'}}],
        'contexts': [{'name': 'emulator',
                      'context': {'cluster': 'emulator', 'user': 'tester', 'namespace': 'default'}}],
    }))
    monkeypatch.setenv('KUBECONFIG', str(path))
    # `kubernetes.config` copies $KUBECONFIG into a module constant when first imported, and
    # `import kopf` imports it; re-point that copy too when it was imported before this test.
    kube_config = sys.modules.get('kubernetes.config.kube_config')
    if kube_config is not None:
        monkeypatch.setattr(kube_config, 'KUBE_CONFIG_DEFAULT_LOCATION', str(path))
    return path


class Api:
    """Plain HTTP calls to the emulator; each returns (status, parsed JSON body)."""

    def __init__(self, emulator: HardenedEmulator) -> None:
        self.emulator = emulator

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = 'application/json') -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        async with self.emulator.request(method, path, data=data, headers={'Content-Type': content_type}) as rsp:
            return rsp.status, await rsp.json(content_type=None)

    async def create(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self.request('POST', path, body)

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.request('GET', path)

    async def replace(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self.request('PUT', path, body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE_PATCH) -> tuple[int, Any]:
        return await self.request('PATCH', path, body, content_type)

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> tuple[int, Any]:
        return await self.request('PATCH', path, ops, JSON_PATCH)

    async def delete(self, path: str) -> tuple[int, Any]:
        return await self.request('DELETE', path)

    async def watch(self, path: str, count: int, timeout: float = 5, **params: str) -> list[dict[str, Any]]:
        """The first `count` events of a watch stream (fails the test if they do not come in time)."""
        events: list[dict[str, Any]] = []
        async with self.emulator.get(path, params={'watch': 'true', **params}, timeout=timeout) as rsp:
            assert rsp.status == 200, await rsp.text()
            async for line in rsp.content:
                if line.strip():
                    events.append(json.loads(line))
                if len(events) >= count:
                    break
        return events


@pytest.fixture
def api(emulator: HardenedEmulator) -> Api:
    return Api(emulator)
