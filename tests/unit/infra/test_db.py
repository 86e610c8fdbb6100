"""The engine: SQLite pragmas and BEGIN IMMEDIATE, PostgreSQL URL handling, the session factory."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from infra.db import make_engine, session_factory

WRITES_PER_THREAD = 20


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'test.db'}")
    yield engine
    engine.dispose()


def pragma(engine: sa.Engine, name: str) -> object:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_file_and_its_folder_are_created(tmp_path: Path, sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    assert (tmp_path / "nested" / "dir" / "test.db").is_file()


def test_sqlite_database_and_its_wal_are_private(tmp_path: Path) -> None:
    path = tmp_path / "private" / "medvault.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for name in ("medvault.db", "medvault.db-wal", "medvault.db-shm"):
            assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
    finally:
        engine.dispose()


def test_an_existing_database_open_to_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "medvault.db"
    path.touch(mode=0o644)
    path.chmod(0o644)

    make_engine(f"sqlite:///{path}").dispose()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_sqlite_pragmas_are_set_on_every_connection(sqlite_engine: sa.Engine) -> None:
    assert pragma(sqlite_engine, "journal_mode") == "wal"
    assert pragma(sqlite_engine, "foreign_keys") == 1
    assert pragma(sqlite_engine, "busy_timeout") == 5000
    assert pragma(sqlite_engine, "synchronous") == 1  # NORMAL
    # Two connections open at once (two pool entries, raw so that neither begins a
    # transaction and locks the other out) each got them on connect.
    first, second = sqlite_engine.raw_connection(), sqlite_engine.raw_connection()
    try:
        for connection in (first, second):
            assert connection.execute("PRAGMA foreign_keys").fetchone() == (1,)
            assert connection.execute("PRAGMA busy_timeout").fetchone() == (5000,)
    finally:
        first.close()
        second.close()


def test_sqlite_enforces_foreign_keys(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        connection.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id))"
        )
    with pytest.raises(sa.exc.IntegrityError), sqlite_engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO child (id, parent_id) VALUES (1, 42)")
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM child").scalar() == 0


def test_sqlite_transactions_begin_immediate(sqlite_engine: sa.Engine) -> None:
    statements: list[str] = []

    @sa.event.listens_for(sqlite_engine, "before_cursor_execute")
    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("SELECT 1")
    assert statements[:2] == ["BEGIN IMMEDIATE", "SELECT 1"]


def test_sqlite_rollback_and_savepoints_are_real(sqlite_engine: sa.Engine) -> None:
    """pysqlite's own transaction handling would autocommit DDL and detach savepoints."""
    with sqlite_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY)")
    with sqlite_engine.connect() as connection:
        with connection.begin():
            connection.exec_driver_sql("INSERT INTO item (id) VALUES (1)")
            savepoint = connection.begin_nested()
            connection.exec_driver_sql("INSERT INTO item (id) VALUES (2)")
            savepoint.rollback()
        transaction = connection.begin()
        connection.exec_driver_sql("INSERT INTO item (id) VALUES (3)")
        transaction.rollback()
        assert connection.exec_driver_sql("SELECT id FROM item").scalars().all() == [1]


def read_then_write(engine: sa.Engine, errors: list[BaseException]) -> None:
    """Increment a counter by reading it, pausing (to widen the race), then writing it back."""
    try:
        for _ in range(WRITES_PER_THREAD):
            with engine.begin() as connection:
                value = connection.exec_driver_sql("SELECT n FROM counter").scalar_one()
                time.sleep(0.002)
                connection.exec_driver_sql("UPDATE counter SET n = ?", (value + 1,))
    except sa.exc.OperationalError as error:
        errors.append(error)


def run_two_writers(engine: sa.Engine) -> tuple[int, list[BaseException]]:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counter (n INTEGER NOT NULL)")
        connection.exec_driver_sql("INSERT INTO counter (n) VALUES (0)")
    errors: list[BaseException] = []
    threads = [threading.Thread(target=read_then_write, args=(engine, errors)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT n FROM counter").scalar_one(), errors


def test_concurrent_read_then_write_transactions_queue_instead_of_failing(
    sqlite_engine: sa.Engine,
) -> None:
    total, errors = run_two_writers(sqlite_engine)
    assert errors == []  # no "database is locked"
    assert total == 2 * WRITES_PER_THREAD  # and no lost update


def deferred_begin_engine(path: Path) -> sa.Engine:
    """The same WAL database and busy timeout, but with SQLite's default deferred BEGIN."""
    engine = sa.create_engine(f"sqlite:///{path}")

    @sa.event.listens_for(engine, "connect")
    def connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA busy_timeout=5000")

    @sa.event.listens_for(engine, "begin")
    def begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    return engine


def test_the_same_workload_fails_with_a_deferred_begin(tmp_path: Path) -> None:
    """Control, showing the test above can fail: a deferred BEGIN reads from a snapshot, and
    writing after the other thread committed fails at once instead of waiting (SQLITE_BUSY)."""
    engine = deferred_begin_engine(tmp_path / "deferred.db")
    try:
        total, errors = run_two_writers(engine)
    finally:
        engine.dispose()
    assert errors or total < 2 * WRITES_PER_THREAD
    assert all("database is locked" in str(error) for error in errors)


def test_postgresql_urls_use_psycopg_3_with_pre_ping() -> None:
    for url in ("postgresql://medvault@db:5432/medvault", "postgres://medvault@db/medvault"):
        engine = make_engine(url)
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.pool._pre_ping
    explicit = make_engine("postgresql+psycopg://medvault@db/medvault")
    assert explicit.url.drivername == "postgresql+psycopg"


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database 'mysql'"):
        make_engine("mysql://root@localhost/medvault")


def test_sessions_are_sqlmodel_sessions_that_keep_objects_loaded(
    sqlite_engine: sa.Engine,
) -> None:
    sessions = session_factory(sqlite_engine)
    with sessions() as session:
        assert isinstance(session, Session)
        assert session.expire_on_commit is False
        assert session.bind is sqlite_engine
