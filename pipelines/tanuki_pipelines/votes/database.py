"""Opening the vote database: SQLite in WAL mode (embedded, one process) or PostgreSQL, brought to
the newest schema by the Alembic migrations before anything reads or writes it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tanuki_common.errors import BadInputError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
URL_VARIABLE = "TANUKI_ARENA_DATABASE_URL"


def database_url(configured: str, base_dir: Path) -> str:
    """The URL to open: the file ``TANUKI_ARENA_DATABASE_URL_FILE`` names (a mounted Secret), else
    ``TANUKI_ARENA_DATABASE_URL``, else the recipe's; a relative SQLite
    path is made absolute under ``base_dir``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    raw = os.environ.get(URL_VARIABLE) or configured
    if named := os.environ.get(f"{URL_VARIABLE}_FILE"):  # a mounted Secret key: the URL holds a password
        try:
            raw = Path(named).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise BadInputError(f"{URL_VARIABLE}_FILE: cannot read the database URL: {exc}") from None
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise BadInputError(f"database_url: not a database URL: {exc}") from None
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not Path(url.database).is_absolute():
        url = url.set(database=str((base_dir / url.database).resolve()))
    return url.render_as_string(hide_password=False)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
    cursor.execute("PRAGMA synchronous=FULL")  # a commit is on disk before the page says "recorded"
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def open_database(url: str) -> Any:
    """An engine on ``url`` whose schema is the newest migration's."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    try:
        migrate(engine)
    except Exception as exc:  # a wrong host, password or database: say so once, do not crash-loop silently
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            raise BadInputError(f"database_url: cannot open {parsed.render_as_string()}: {exc.orig}") from None
        raise
    return engine


def migrate(engine: Any) -> None:
    """Apply every migration the database lacks (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def sessions(engine: Any) -> Any:
    """A session factory whose objects stay readable after commit."""
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(engine, expire_on_commit=False)
