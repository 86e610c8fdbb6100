"""Fixtures for the real services the tests talk to: a moto server over HTTP, PostgreSQL.

A service the CI run asked for (its MEDVAULT_TEST_* variable is set) must be there: a test that
needs it fails, never skips. Without the variable, the moto server is started here (it is a
Python package, always installed) and PostgreSQL tests are skipped with the reason.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy.engine import make_url
from sqlmodel import Session

from infra.db import make_engine
from tests.apiharness import api  # noqa: F401 - the `api` fixture, for every test folder
from tests.databases import create_tables, empty_tables, sqlite_with_tables
from vault.accounts import passwords

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test`'s ``--dist loadscope``: the installation suites in one process, one after
    another (tests/scheduling.py)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from tests.scheduling import InstallationsTogether

    return InstallationsTogether(config, log)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """Base URL of a moto server serving S3 and KMS over real HTTP."""
    with moto_server() as url:
        yield url


@contextmanager
def moto_server() -> Iterator[str]:
    """The moto server CI names (``MEDVAULT_TEST_MOTO_URL``; it must answer), else a new one,
    killed when done (its state is thrown away anyway, and a server holding much takes long to
    exit politely)."""
    asked = os.environ.get("MEDVAULT_TEST_MOTO_URL")
    if asked:
        parts = urlsplit(asked)
        if not wait_for_port(parts.hostname or "127.0.0.1", parts.port or 80, timeout=5):
            pytest.fail(f"MEDVAULT_TEST_MOTO_URL={asked} is set but nothing answers there")
        yield asked.rstrip("/")
        return
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_for_port("127.0.0.1", port):
            pytest.fail("the moto server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 needs credentials to sign requests; moto accepts any. Never real ones in tests."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@contextmanager
def _fresh_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database; drop it on exit."""
    asked = os.environ.get("MEDVAULT_TEST_POSTGRES_URL")
    if not asked:
        pytest.skip("PostgreSQL tests need MEDVAULT_TEST_POSTGRES_URL (set by .ci/run)")
    admin = sa.create_engine(asked, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            name = f"medvault_test_{uuid.uuid4().hex[:12]}"
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"MEDVAULT_TEST_POSTGRES_URL is set but PostgreSQL refused: {exc.orig}")
    url = make_url(asked).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database for this test session (dropped afterwards)."""
    with _fresh_postgres_database() as url:
        yield url


@pytest.fixture
def own_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test alone (for tests that migrate it and leave it so)."""
    with _fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_with_tables_url() -> Iterator[str]:
    """A PostgreSQL database of this test session with every table created once (for `engine`,
    which empties it before each test; `postgres_url` stays an empty database)."""
    with _fresh_postgres_database() as url:
        engine = make_engine(url)
        try:
            create_tables(engine)
        finally:
            engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A database engine with every table created and no row: SQLite file, and PostgreSQL when
    asked."""
    if request.param == "sqlite":
        eng = make_engine(sqlite_with_tables(tmp_path / "test.db"))
    else:
        eng = make_engine(request.getfixturevalue("postgres_with_tables_url"))
        empty_tables(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def session(engine: sa.Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


@pytest.fixture(autouse=True)
def cheap_password_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id at its cheapest in process: the tests sign thousands of users in, and at the
    product's cost (RFC 9106, 64 MiB, t=3) that alone took minutes. Hashes and checks work the
    same way; tests marked ``real_password_hashing`` and every process the tests start (the CLI,
    `medvault serve`, `medvault up`) use the real parameters."""
    if request.node.get_closest_marker("real_password_hashing"):
        return
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher.from_parameters(CHEAPEST))
    monkeypatch.setattr(
        passwords, "_dummy_hash", functools.cache(passwords._dummy_hash.__wrapped__)
    )
