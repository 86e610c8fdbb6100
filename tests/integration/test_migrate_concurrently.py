"""`medvault db upgrade` started by several containers at once: they take turns on PostgreSQL.

Each upgrade is a real `medvault db upgrade` process, as in the compose file's `migrate`
service (and as several API containers would run it): Alembic keeps module-level state, so
threads of one process would not show how separate processes behave.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from infra.db import make_engine
from infra.migrate import MIGRATION_LOCK_KEY, check, heads

pytestmark = pytest.mark.postgres

MEDVAULT = Path(sys.executable).with_name("medvault")
UPGRADERS = 3
UPGRADE_SECONDS = 180


def start_upgrade(url: str, workdir: Path) -> subprocess.Popen[str]:
    # Run in an empty folder: settings also read a `.env` of the working directory.
    env = {**os.environ, "MEDVAULT_DATABASE_URL": url, "MEDVAULT_DATA_DIR": str(workdir)}
    return subprocess.Popen(
        [str(MEDVAULT), "db", "upgrade"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = process.communicate(timeout=UPGRADE_SECONDS)
    return process.returncode, out + err


def version_rows(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return [row[0] for row in rows]
    finally:
        engine.dispose()


@contextmanager
def migration_lock_held(url: str) -> Iterator[sa.Connection]:
    """The migrations' advisory lock, taken by the test as another upgrader would hold it."""
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
            try:
                yield connection
            finally:
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY}
                )
    finally:
        engine.dispose()


def waiting_for_advisory_lock(connection: sa.Connection) -> int:
    """How many sessions of this database wait for an advisory lock."""
    return int(
        connection.execute(
            sa.text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).scalar_one()
    )


def test_parallel_upgrades_all_succeed_and_migrate_once(
    own_postgres_url: str, tmp_path: Path
) -> None:
    upgraders = [start_upgrade(own_postgres_url, tmp_path) for _ in range(UPGRADERS)]
    results = [finish(process) for process in upgraders]

    assert [code for code, _ in results] == [0] * UPGRADERS, [text for _, text in results]
    assert version_rows(own_postgres_url) == heads()
    assert check(own_postgres_url) == []


def test_an_upgrade_waits_while_another_holds_the_migration_lock(
    own_postgres_url: str, tmp_path: Path
) -> None:
    with migration_lock_held(own_postgres_url) as connection:
        upgrader = start_upgrade(own_postgres_url, tmp_path)
        deadline = time.monotonic() + UPGRADE_SECONDS
        while not waiting_for_advisory_lock(connection):
            assert upgrader.poll() is None, finish(upgrader)[1]
            assert time.monotonic() < deadline, "the upgrade never asked for the lock"
            time.sleep(0.1)
        # Still waiting, and nothing was created behind the other upgrader's back.
        assert upgrader.poll() is None
        tables = connection.execute(
            sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        ).scalar_one()
        assert tables == 0

    code, text = finish(upgrader)
    assert code == 0, text
    assert version_rows(own_postgres_url) == heads()
