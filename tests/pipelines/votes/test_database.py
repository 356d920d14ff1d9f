"""The vote database: migrations bring an empty SQLite or PostgreSQL database to the newest schema
(and are a no-op the second time); SQLite runs in WAL mode with synchronous commits; a vote
written is read back as the exports give it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from tanuki_common.errors import BadInputError
from tanuki_pipelines.votes.database import database_url, open_database, sessions
from tanuki_pipelines.votes.export import fastchat_record, read_votes, voted
from tanuki_pipelines.votes.schema import OPEN, VOTED, Battle, Turn, Vote


def test_a_relative_sqlite_path_lives_under_the_output_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TANUKI_ARENA_DATABASE_URL", raising=False)
    assert database_url("sqlite:///arena.db", tmp_path) == f"sqlite:///{tmp_path / 'arena.db'}"
    monkeypatch.setenv("TANUKI_ARENA_DATABASE_URL", "postgresql+psycopg://u:p@db:5432/arena")
    assert database_url("sqlite:///arena.db", tmp_path) == "postgresql+psycopg://u:p@db:5432/arena"
    monkeypatch.setenv("TANUKI_ARENA_DATABASE_URL", "not a url")
    with pytest.raises(BadInputError, match="database_url"):
        database_url("sqlite:///arena.db", tmp_path)
    secret = tmp_path / "url"  # an Arena's urlSecret, mounted: the file wins over the variable
    secret.write_text("postgresql+psycopg://u:secret@db:5432/votes\n")
    monkeypatch.setenv("TANUKI_ARENA_DATABASE_URL_FILE", str(secret))
    assert database_url("sqlite:///arena.db", tmp_path) == "postgresql+psycopg://u:secret@db:5432/votes"
    monkeypatch.setenv("TANUKI_ARENA_DATABASE_URL_FILE", str(tmp_path / "missing"))
    with pytest.raises(BadInputError, match="TANUKI_ARENA_DATABASE_URL_FILE"):
        database_url("sqlite:///arena.db", tmp_path)


def test_migrations_from_empty_then_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'votes.db'}"
    engine = open_database(url)
    assert {"battles", "turns", "votes", "alembic_version"} <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    engine.dispose()
    again = open_database(url)  # the newest schema already: nothing to do, nothing lost
    assert inspect(again).get_unique_constraints("turns")[0]["column_names"] == ["battle_id", "number"]
    again.dispose()


def test_an_unreachable_database_is_named() -> None:
    with pytest.raises(BadInputError, match=r"cannot open postgresql\+psycopg://nobody:\*\*\*@127.0.0.1:1/none"):
        open_database("postgresql+psycopg://nobody:wrong@127.0.0.1:1/none")  # nothing listens on port 1


NOW = datetime(2026, 12, 4, 5, 0, tzinfo=UTC)


def add_voted_battle(session: Any, evaluation: str) -> str:
    """A one-turn battle alpha (left) against beta, voted ``evaluation`` by hanako; its id."""
    battle_id = str(uuid.uuid4())
    session.add(Battle(id=battle_id, voter="hanako", model_a="alpha", model_b="beta", language="ja",
                       status=VOTED, flagged=False, created=NOW))
    session.add(Turn(battle_id=battle_id, number=1, question="質問", answer_a="甲", answer_b="乙"))
    session.add(Vote(battle_id=battle_id, voter="hanako", evaluation=evaluation, created=NOW))
    return battle_id


def test_a_vote_reads_back_as_both_exports(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'votes.db'}"
    engine = open_database(url)
    with sessions(engine)() as session:
        add_voted_battle(session, "bothbad")
        session.add(Battle(id=str(uuid.uuid4()), voter="taro", model_a="beta", model_b="alpha", language="ja",
                           status=OPEN, flagged=False, created=NOW))  # not voted: not exported
        session.commit()
    with sessions(engine)() as session:
        rows = list(voted(session))
        assert len(rows) == 1
        record = fastchat_record(*rows[0])
    assert record["winner"] == "tie (bothbad)" and record["conversation_b"][1]["content"] == "乙"
    engine.dispose()
    [vote] = read_votes(url)
    assert (vote["question"], vote["answer_1"], vote["answer_2"], vote["model_1"], vote["model_2"],
            vote["evaluation"]) == ("質問", "甲", "乙", "alpha", "beta", "bothbad")
    assert vote["created_time"].startswith("2026-12-04T05:00:00")


def test_postgresql_migrates_from_empty_and_exports_the_same_records(postgres_url: str, tmp_path: Path) -> None:
    engine = open_database(postgres_url)
    assert {"battles", "turns", "votes", "alembic_version"} <= set(inspect(engine).get_table_names())
    with sessions(engine)() as session:
        battle_id = add_voted_battle(session, "A")
        session.commit()
        session.add(Vote(battle_id=battle_id, voter="taro", evaluation="B", created=NOW))
        with pytest.raises(IntegrityError):  # one vote per battle, enforced by the database itself
            session.commit()
    engine.dispose()
    assert open_database(postgres_url) is not None  # migrating again is a no-op
    [vote] = read_votes(postgres_url)
    assert (vote["model_1"], vote["evaluation"], vote["created_time"]) == ("alpha", "A", "2026-12-04T05:00:00+00:00")
