"""The arena's web app (FastAPI, server-side templates, one shipped script; nothing from a CDN).

A person asks a question; two models drawn by ``pairing.draw`` answer side by side, streamed to the
page (``GET /api/battles/{id}/answer/{a|b}``, NDJSON lines ``{"delta"}`` … ``{"done"}`` or
``{"error"}``); they may ask follow-ups; they vote (``A``, ``B``, ``tie``, ``bothbad``, and
optionally a corrected answer) and only then see the names. A new battle's row is written in the
background (one writer thread), so its answers start streaming while it commits; anything that
changes a battle (an answer stored, a follow-up, the vote) waits for that write. A vote is committed
before the reply says it is recorded. Every request but ``/healthz`` and ``/metrics`` names its voter (``identity``);
every POST carries the page's CSRF token and no cross-site origin.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import random
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from tanuki_common.errors import BadInputError
from tanuki_pipelines.arena.config import ArenaServeConfig
from tanuki_pipelines.arena.metrics import ArenaMetrics
from tanuki_pipelines.arena.pairing import draw, names_a_model
from tanuki_pipelines.arena.texts import TEXTS
from tanuki_pipelines.arena.upstream import AnswerFailed, stream_answer
from tanuki_pipelines.votes.codes import EVALUATIONS
from tanuki_pipelines.votes.database import sessions
from tanuki_pipelines.votes.export import fastchat_record, tanuki_record, voted
from tanuki_pipelines.votes.schema import FAILED, OPEN, VOTED, Battle, Turn, Vote

HERE = Path(__file__).resolve().parent
CSRF_COOKIE, TOKEN_COOKIE, VOTER_COOKIE, LANGUAGE_COOKIE = "arena_csrf", "arena_token", "arena_voter", "arena_lang"
CSRF_HEADER = "X-CSRF-Token"
MAX_VOTER_CHARS = 200


class Ask(BaseModel):
    question: str
    """The question (the first of a battle, or a follow-up)."""


class Ballot(BaseModel):
    evaluation: str
    """One of ``EVALUATIONS``: ``A``, ``B``, ``tie``, ``bothbad``."""
    corrected_answer: str | None = Field(default=None)
    """A better answer the voter wrote (optional)."""


LOG = logging.getLogger("tanuki.arena")
WRITE_WAIT_SECONDS = 60.0
"""Longest wait for a new battle's row before a change to the battle gives up (503)."""


@dataclass
class Drawn:
    """A battle just drawn whose row may still be on its way to the database: what its first
    answers need meanwhile."""

    voter: str
    model_a: str
    model_b: str
    question: str
    stored: Future[None]
    """Done once the row is committed (or failed to be)."""


def _tokens_file(config: ArenaServeConfig) -> Path | None:
    identity = config.identity
    if identity.mode != "tokens":
        return None
    if identity.tokens_file is not None:
        return identity.tokens_file
    named = os.environ.get(f"{identity.tokens_env}_FILE")
    if not named:
        raise BadInputError(f"identity.tokens_env: {identity.tokens_env}_FILE is not set (the file of voter:token lines)")
    return Path(named)


def _tokens(config: ArenaServeConfig) -> dict[str, str]:
    """token → voter, from the ``voter:token`` lines of the identity's tokens file."""
    path = _tokens_file(config)
    if path is None:
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BadInputError(f"identity: cannot read the voter tokens: {exc}") from None
    found = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        voter, sep, token = line.strip().partition(":")
        if not sep or not voter or len(token) < 16:
            raise BadInputError(f"{path}:{number}: expected voter:token (a token of 16+ characters)")
        found[token] = voter
    return found


class Arena:
    """One arena process: its recipe, database sessions, HTTP client, random draws and the cached
    leaderboard."""

    def __init__(self, config: ArenaServeConfig, engine: Any) -> None:
        self.config = config
        self.engine = engine
        self.session = sessions(engine)
        self.contestants = {contestant.label: contestant for contestant in config.contestants}
        self.rng = random.Random(config.seed)
        self.draw_lock = threading.Lock()
        self.tokens = _tokens(config)
        self.revealing = sorted({*self.contestants, *(c.model for c in config.contestants), *config.identity_words},
                                key=len, reverse=True)
        self.board: tuple[int, dict[str, Any]] | None = None
        self.board_lock = threading.Lock()
        self.metrics = ArenaMetrics()
        self.http: Any = None
        self.writer = ThreadPoolExecutor(1, thread_name_prefix="arena-battle-writer")
        self.drawn: dict[str, Drawn] = {}
        """Battles whose row is not committed yet (each leaves once its write is done)."""
        self.pair_counts: dict[tuple[str, str], int] | None = None
        """Battles per pair of contestants that did not fail: read from the database once, then kept
        here (with several replicas each balances the battles it draws)."""
        self.recent_draws: dict[str, deque[float]] = {}
        """Per voter, when this process drew their battles of the last minute (``time.monotonic()``),
        seeded from the database when it first sees the voter: the battle limit without a read."""

    # ---- identity and CSRF ---------------------------------------------------------------------

    def voter(self, request: Request) -> str:
        mode = self.config.identity.mode
        if mode == "header":
            voter = request.headers.get(self.config.identity.header, "").strip()
        elif mode == "tokens":
            header = request.headers.get("Authorization", "")
            token = header[7:].strip() if header.startswith("Bearer ") else request.cookies.get(TOKEN_COOKIE, "")
            voter = next((name for known, name in self.tokens.items() if token and hmac.compare_digest(known, token)),
                         "")
        else:
            voter = request.cookies.get(VOTER_COOKIE, "")
        if not voter:
            raise HTTPException(401, {"header": f"no voter: the {self.config.identity.header} header is missing",
                                      "tokens": "no voter: a missing or unknown token",
                                      "open": "no voter: open the arena page first"}[mode])
        if len(voter) > MAX_VOTER_CHARS:
            raise HTTPException(400, f"voter identity longer than {MAX_VOTER_CHARS} characters")
        return voter

    @staticmethod
    def check_post(request: Request) -> None:
        """The double-submitted CSRF token, and no cross-site origin."""
        if request.headers.get("Sec-Fetch-Site") == "cross-site":
            raise HTTPException(403, "cross-site request refused")
        origin = request.headers.get("Origin")
        if origin and origin != "null" and origin.rstrip("/") != str(request.base_url).rstrip("/"):
            raise HTTPException(403, f"request from another origin refused: {origin}")
        cookie, header = request.cookies.get(CSRF_COOKIE, ""), request.headers.get(CSRF_HEADER, "")
        if not cookie or not header or not hmac.compare_digest(cookie, header):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")

    # ---- battles ---------------------------------------------------------------------------------

    def question_of(self, text: str) -> str:
        question = text.strip()
        if not question:
            raise HTTPException(422, "the question is empty")
        if len(question) > self.config.limits.max_question_chars:
            raise HTTPException(422, f"the question is longer than {self.config.limits.max_question_chars} characters")
        return question

    def recent(self, session: Any, column: Any, voter_column: Any, voter: str) -> int:
        since = datetime.now(UTC) - timedelta(seconds=60)
        return session.scalar(select(func.count()).where(voter_column == voter, column >= since)) or 0

    def seeded(self, voter: str) -> bool:
        """Whether a battle for ``voter`` can be drawn from memory alone (no database read)."""
        return self.pair_counts is not None and voter in self.recent_draws

    def seed(self, voter: str) -> None:
        """What drawing needs from the database, read once: the pair counts, and the voter's battles
        of the last minute (counted as if drawn now, so none expires sooner than it would)."""
        with self.session() as session:
            counts = self.stored_pair_counts(session) if self.pair_counts is None else None
            recent = self.recent(session, Battle.created, Battle.voter, voter) if voter not in self.recent_draws else 0
        now = time.monotonic()
        with self.draw_lock:
            if counts is not None and self.pair_counts is None:
                self.pair_counts = counts
            self.recent_draws.setdefault(voter, deque([now] * recent))

    def start_battle(self, voter: str, question: str, language: str) -> dict[str, Any]:
        """Draws a battle from memory (``seed`` the voter first) and has its row written in the background."""
        now = time.monotonic()
        with self.draw_lock:
            assert self.pair_counts is not None, "seed() before the first draw"
            drawn_at = self.recent_draws.setdefault(voter, deque())
            while drawn_at and drawn_at[0] <= now - 60:
                drawn_at.popleft()
            if len(drawn_at) >= self.config.limits.battles_per_minute:
                raise HTTPException(429, f"at most {self.config.limits.battles_per_minute} battles a minute")
            drawn_at.append(now)
            left, right = draw(sorted(self.contestants), self.pair_counts, self.rng)
            pair = (min(left, right), max(left, right))
            self.pair_counts[pair] = self.pair_counts.get(pair, 0) + 1
            battle_id = str(uuid.uuid4())
            stored = self.writer.submit(self.write_battle, Battle(
                id=battle_id, voter=voter, model_a=left, model_b=right, language=language, status=OPEN, flagged=False,
                created=datetime.now(UTC)), question)
            self.drawn[battle_id] = Drawn(voter, left, right, question, stored)
            stored.add_done_callback(lambda _done: self.drawn.pop(battle_id, None))  # at once if already done
        self.metrics.battles.inc()
        return {"battle_id": battle_id, "turn": 1}

    @staticmethod
    def stored_pair_counts(session: Any) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        rows = session.execute(select(Battle.model_a, Battle.model_b, func.count()).where(Battle.status != FAILED)
                               .group_by(Battle.model_a, Battle.model_b))
        for model_a, model_b, count in rows:
            pair = (min(model_a, model_b), max(model_a, model_b))
            counts[pair] = counts.get(pair, 0) + count
        return counts

    def write_battle(self, battle: Battle, question: str) -> None:
        """The writer thread: a new battle's row and its first turn."""
        try:
            with self.session() as session:
                session.add(battle)
                session.add(Turn(battle_id=battle.id, number=1, question=question))
                session.commit()
        except Exception:
            LOG.exception("battle %s could not be stored", battle.id)
            raise

    def written(self, battle_id: str) -> None:
        """Waits until a battle drawn here has its row (a change to it needs the row)."""
        drawn = self.drawn.get(battle_id)
        if drawn is None:
            return
        try:
            drawn.stored.result(timeout=WRITE_WAIT_SECONDS)
        except Exception as exc:
            raise HTTPException(503, f"the battle could not be stored: {exc}") from None

    def settle(self) -> None:
        """Waits until every battle drawn so far has its row."""
        self.writer.submit(lambda: None).result()

    def owned(self, session: Any, battle_id: str, voter: str) -> Battle:
        battle = session.get(Battle, battle_id)
        if battle is None:
            raise HTTPException(404, f"no battle {battle_id}")
        if battle.voter != voter:
            raise HTTPException(403, "this battle belongs to another voter")
        return battle

    def add_turn(self, voter: str, battle_id: str, question: str) -> dict[str, Any]:
        self.written(battle_id)
        with self.session() as session:
            battle = self.owned(session, battle_id, voter)
            self.refuse_closed(battle)
            if len(battle.turns) >= self.config.limits.max_turns:
                raise HTTPException(409, f"a battle has at most {self.config.limits.max_turns} questions")
            if any(turn.answer_a is None or turn.answer_b is None for turn in battle.turns):
                raise HTTPException(409, "both models must finish answering first")
            number = len(battle.turns) + 1
            session.add(Turn(battle_id=battle.id, number=number, question=question))
            try:
                session.commit()
            except IntegrityError:
                raise HTTPException(409, "that follow-up was already asked") from None
        return {"battle_id": battle_id, "turn": number}

    @staticmethod
    def refuse_closed(battle: Battle) -> None:
        if battle.status == FAILED:
            raise HTTPException(409, f"the battle failed: {battle.failure}")
        if battle.status == VOTED:
            raise HTTPException(409, "this battle is already voted on")

    def drawn_conversation(self, voter: str, battle_id: str,
                           number: int) -> tuple[Battle, list[dict[str, str]], None] | None:
        """A battle drawn here whose row is still being written: its first answers need not wait for
        the row, and come from memory (no database read); None for any other battle."""
        drawn = self.drawn.get(battle_id)
        if drawn is None or drawn.stored.done():
            return None
        if drawn.voter != voter:
            raise HTTPException(403, "this battle belongs to another voter")
        if number != 1:
            raise HTTPException(404, f"battle {battle_id} has no turn {number}")
        return (Battle(id=battle_id, voter=voter, model_a=drawn.model_a, model_b=drawn.model_b, status=OPEN),
                [{"role": "user", "content": drawn.question}], None)

    def conversation(self, voter: str, battle_id: str, side: str, number: int) -> tuple[Battle, list[dict[str, str]],
                                                                                       str | None]:
        """The battle, the messages that side answers for turn ``number``, and its stored answer."""
        found = self.drawn_conversation(voter, battle_id, number)
        if found is not None:
            return found
        with self.session() as session:
            battle = self.owned(session, battle_id, voter)
            turns = battle.turns
            if not 1 <= number <= len(turns):
                raise HTTPException(404, f"battle {battle_id} has no turn {number}")
            messages = []
            for turn in turns[:number - 1]:
                messages += [{"role": "user", "content": turn.question},
                             {"role": "assistant", "content": getattr(turn, f"answer_{side}") or ""}]
            messages.append({"role": "user", "content": turns[number - 1].question})
            return battle, messages, getattr(turns[number - 1], f"answer_{side}")

    def store_answer(self, battle_id: str, number: int, side: str, answer: str) -> None:
        column = Turn.answer_a if side == "a" else Turn.answer_b
        self.written(battle_id)
        with self.session() as session:
            session.execute(update(Turn).where(Turn.battle_id == battle_id, Turn.number == number, column.is_(None))
                            .values({column: answer}))
            if names_a_model(answer, self.revealing):
                session.execute(update(Battle).where(Battle.id == battle_id).values(flagged=True))
            session.commit()

    def fail(self, battle_id: str, why: str) -> None:
        self.written(battle_id)
        with self.session() as session:
            battle = session.get(Battle, battle_id)
            changed = session.execute(update(Battle).where(Battle.id == battle_id, Battle.status == OPEN)
                                      .values(status=FAILED, failure=why))
            session.commit()
        if changed.rowcount == 1 and battle is not None:
            with self.draw_lock:  # a failed battle does not count towards its pair
                pair = (min(battle.model_a, battle.model_b), max(battle.model_a, battle.model_b))
                if self.pair_counts is not None and self.pair_counts.get(pair, 0) > 0:
                    self.pair_counts[pair] -= 1
        self.metrics.failed.inc()

    async def answer(self, voter: str, battle_id: str, side: str, number: int) -> AsyncIterator[bytes]:
        # a battle whose row is being written is answered from memory on the event loop; the others
        # read the database in the thread pool
        found = self.drawn_conversation(voter, battle_id, number)
        battle, messages, stored = found if found is not None else \
            await run_in_threadpool(self.conversation, voter, battle_id, side, number)

        def line(event: dict[str, Any]) -> bytes:
            return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")

        if stored is not None:
            yield line({"delta": stored})
            yield line({"done": True})
            return
        if battle.status == FAILED:
            yield line({"error": battle.failure})
            return
        contestant = self.contestants[battle.model_a if side == "a" else battle.model_b]
        pieces: list[str] = []
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.answer_timeout_seconds):
                async for piece in stream_answer(self.http, contestant, messages, self.config.max_tokens,
                                                 self.config.temperature):
                    if not pieces:
                        self.metrics.first_token.observe(time.monotonic() - started)
                    pieces.append(piece)
                    yield line({"delta": piece})
        except (AnswerFailed, TimeoutError) as exc:
            why = str(exc) if isinstance(exc, AnswerFailed) else \
                f"no full answer within {self.config.answer_timeout_seconds:g} s"
            await run_in_threadpool(self.fail, battle_id, f"model {side.upper()}: {why}")
            yield line({"error": f"model {side.upper()}: {why}"})
            return
        try:
            await run_in_threadpool(self.store_answer, battle_id, number, side, "".join(pieces))
        except HTTPException as exc:
            yield line({"error": exc.detail})
            return
        self.metrics.answer.observe(time.monotonic() - started)
        yield line({"done": True})

    def vote(self, voter: str, battle_id: str, ballot: Ballot) -> dict[str, Any]:
        if ballot.evaluation not in EVALUATIONS:
            raise HTTPException(422, f"evaluation must be one of {sorted(EVALUATIONS)}")
        corrected = (ballot.corrected_answer or "").strip() or None
        if corrected and len(corrected) > self.config.limits.max_corrected_chars:
            raise HTTPException(422, f"the corrected answer is longer than {self.config.limits.max_corrected_chars} "
                                     "characters")
        self.written(battle_id)
        with self.session() as session:
            battle = self.owned(session, battle_id, voter)
            self.refuse_closed(battle)
            if any(turn.answer_a is None or turn.answer_b is None for turn in battle.turns):
                raise HTTPException(409, "both models must finish answering before the vote")
            if self.recent(session, Vote.created, Vote.voter, voter) >= self.config.limits.votes_per_minute:
                raise HTTPException(429, f"at most {self.config.limits.votes_per_minute} votes a minute")
            try:  # the status change takes the write lock first: of two racing votes one changes nothing
                changed = session.execute(update(Battle).where(Battle.id == battle.id, Battle.status == OPEN)
                                          .values(status=VOTED))
                if changed.rowcount != 1:
                    raise IntegrityError("vote", None, Exception("the battle is no longer open"))
                session.add(Vote(battle_id=battle.id, voter=voter, evaluation=ballot.evaluation,
                                 corrected_answer=corrected, created=datetime.now(UTC)))
                session.commit()  # on disk (SQLite: synchronous FULL) before the reply says "recorded"
            except IntegrityError:
                session.rollback()
                raise HTTPException(409, "this battle is already voted on") from None
        self.metrics.votes.labels(ballot.evaluation).inc()
        return {"recorded": True, "model_a": battle.model_a, "model_b": battle.model_b, "flagged": battle.flagged}

    # ---- ratings and exports ---------------------------------------------------------------------

    def leaderboard(self) -> dict[str, Any]:
        """The ratings of every unflagged vote, recomputed when a vote came since the last time."""
        from tanuki_pipelines.eval.ratings import clean, leaderboard, models_of

        with self.session() as session:
            count = session.scalar(select(func.count()).select_from(Vote)) or 0
            with self.board_lock:
                if self.board is not None and self.board[0] == count:
                    return self.board[1]
                records = [fastchat_record(battle, vote) for battle, vote in voted(session, include_flagged=False)]
        log = clean(records)
        settings = self.config.ratings
        board: dict[str, Any] = {"votes": count, "rated_votes": len(log.battles), "models": []}
        if len(models_of(log.battles)) >= 2:
            anchor = (settings.anchor_model, settings.anchor_rating) if settings.anchor_model else None
            board.update(leaderboard(log.battles, settings.bootstrap_rounds, settings.seed, anchor,
                                     settings.glicko_period, settings.glicko_tau, settings.prior_sd,
                                     settings.min_battles))
        with self.board_lock:
            self.board = (count, board)
        return board

    def export(self, form: str) -> list[str]:
        with self.session() as session:
            if form == "fastchat":
                rows = [fastchat_record(battle, vote) for battle, vote in voted(session, include_flagged=False)]
            else:
                rows = [tanuki_record(battle, vote) for battle, vote in voted(session)]
        return [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]

    def healthy(self) -> None:
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")


def create_app(config: ArenaServeConfig, engine: Any, beside: Callable[[], dict[str, Any]] = lambda: {},
               transport: Any = None) -> FastAPI:
    """The app; ``beside``: other results to show on the leaderboard page, read at each request
    (an EvalJob's judged arena ``leaderboard.json`` and MT-Bench ``grades.json``); ``transport``:
    the httpx transport to the models (default: the network)."""
    import contextlib

    import httpx

    arena = Arena(config, engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(config.answer_timeout_seconds, connect=10.0)
        async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=200),
                                     transport=transport) as http:
            arena.http = http
            try:
                yield
            finally:
                arena.writer.shutdown(wait=True)  # battles drawn are written before the process ends

    app = FastAPI(title="tanuki arena", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.arena = arena
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html: questions render as text

    def language(request: Request) -> str:
        asked = request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE) or config.language
        return asked if asked in TEXTS else config.language

    def page(request: Request, name: str, **context: Any) -> Response:
        lang = language(request)
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = templates.TemplateResponse(request, name, {"t": TEXTS[lang], "lang": lang, "csrf": csrf,
                                                              **context})
        secure = request.url.scheme == "https"

        def cookie(name: str, value: str) -> None:
            response.set_cookie(name, value, httponly=True, samesite="strict", secure=secure)

        cookie(CSRF_COOKIE, csrf)
        cookie(LANGUAGE_COOKIE, lang)
        token = request.query_params.get("token")
        if config.identity.mode == "tokens" and token:
            cookie(TOKEN_COOKIE, token)
        if config.identity.mode == "open" and not request.cookies.get(VOTER_COOKIE):
            cookie(VOTER_COOKIE, f"visitor-{secrets.token_hex(8)}")
        response.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self' data:; object-src 'none'"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    def identified(request: Request) -> str:
        if config.identity.mode == "tokens" and request.query_params.get("token") and request.method == "GET":
            token = request.query_params["token"]
            if any(hmac.compare_digest(known, token) for known in arena.tokens):
                return arena.tokens[token]
        if config.identity.mode == "open" and request.method == "GET" and not request.cookies.get(VOTER_COOKIE):
            return "new visitor"
        return arena.voter(request)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        identified(request)
        return page(request, "index.html")

    @app.get("/leaderboard", response_class=HTMLResponse)
    def leaderboard_page(request: Request) -> Response:
        identified(request)
        return page(request, "leaderboard.html", beside=beside())

    @app.get("/api/questions")
    def questions(request: Request) -> list[dict[str, str]]:
        from tanuki_pipelines.eval.arena import load_prompts
        from tanuki_pipelines.eval.config import ArenaConfig

        arena.voter(request)
        return [{"id": key, "prompt": prompt} for key, prompt in load_prompts(ArenaConfig(prompts=config.questions))]

    @app.post("/api/battles")
    async def start(request: Request, ask: Ask) -> dict[str, Any]:
        # async: a voter seen before is drawn for from memory; only the first time is the database
        # read, in the thread pool (the voter waits for both answers' first tokens after this)
        arena.check_post(request)
        voter = arena.voter(request)
        question = arena.question_of(ask.question)
        if not arena.seeded(voter):
            await run_in_threadpool(arena.seed, voter)
        return arena.start_battle(voter, question, language(request))

    @app.post("/api/battles/{battle_id}/turns")
    def follow_up(request: Request, battle_id: str, ask: Ask) -> dict[str, Any]:
        arena.check_post(request)
        voter = arena.voter(request)
        return arena.add_turn(voter, battle_id, arena.question_of(ask.question))

    @app.get("/api/battles/{battle_id}/answer/{side}")
    async def answer(request: Request, battle_id: str, side: str, turn: int = 1) -> Response:
        # async: the voter is found in memory, and a thread-pool hop would delay the stream's start
        if side not in ("a", "b"):
            raise HTTPException(404, "side must be a or b")
        voter = arena.voter(request)
        return StreamingResponse(arena.answer(voter, battle_id, side, turn), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @app.post("/api/battles/{battle_id}/vote")
    def vote(request: Request, battle_id: str, ballot: Ballot) -> dict[str, Any]:
        arena.check_post(request)
        return arena.vote(arena.voter(request), battle_id, ballot)

    @app.get("/api/leaderboard")
    def leaderboard(request: Request) -> dict[str, Any]:
        arena.voter(request)
        return {**arena.leaderboard(), "beside": beside()}

    @app.get("/api/votes")
    def votes(request: Request, format: str = "tanuki") -> Response:
        arena.voter(request)
        if format not in ("tanuki", "fastchat"):
            raise HTTPException(422, "format must be tanuki or fastchat")
        return PlainTextResponse("".join(arena.export(format)), media_type="application/x-ndjson")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        arena.healthy()
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = arena.metrics.exposition()
        return Response(body, media_type=content_type)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return app
