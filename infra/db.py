"""The database engine (SQLite for the embedded setup, PostgreSQL in production) and sessions."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 5000

# Set on every new SQLite connection: WAL lets readers run beside the one writer, and a writer
# waits (busy_timeout) instead of failing at once; foreign keys are off by default in SQLite.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
)


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///...`` or ``postgresql://...``), set up for medvault."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend in ("postgresql", "postgres"):
        return _postgresql_engine(parsed)
    raise ValueError(f"unsupported database {backend!r}; use sqlite or postgresql")


def session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (they are handed to templates/tasks)."""
    return sessionmaker(bind=engine, class_=Session, expire_on_commit=False)


def _postgresql_engine(url: URL) -> sa.Engine:
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> sa.Engine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        _make_private_database_file(Path(url.database))
    engine = sa.create_engine(url)
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _make_private_database_file(path: Path) -> None:
    """Create (or tighten) the database file as 0600 in a 0700 folder.

    The database holds wrapped keys and sealed personal data. SQLite gives its -wal and -shm
    files the database file's own mode, so making this one private makes all three private.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    os.chmod(path, 0o600)


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Take transaction control away from pysqlite (it would BEGIN only before DML, too late to
    # take the write lock); SQLAlchemy's "begin" event emits BEGIN IMMEDIATE instead.
    dbapi_connection.isolation_level = None
    for pragma in SQLITE_PRAGMAS:
        dbapi_connection.execute(pragma)


def _begin_immediate(connection: sa.Connection) -> None:
    # Take the write lock up front: a transaction that reads and then writes would otherwise
    # hold a read lock and fail with "database is locked" when it tries to upgrade, instead of
    # queueing on busy_timeout behind the other writer.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
