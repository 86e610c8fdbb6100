"""``medvault user add`` / ``user disable``: the real console script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, SQLModel, select

import infra.models  # noqa: F401 - registers every table
from infra.db import make_engine
from infra.settings import Settings
from infra.wiring import derive_secrets
from vault.accounts.models import Role, User
from vault.accounts.passwords import login_digest, verify_password
from vault.audit.models import AuditEvent

MEDVAULT = Path(sys.executable).with_name("medvault")
PASSWORD = "a long enough passphrase"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment with a SQLite database that has every table."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MEDVAULT_")}
    clean["MEDVAULT_DATA_DIR"] = str(tmp_path / "data")
    clean["MEDVAULT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(clean["MEDVAULT_DATABASE_URL"])
    SQLModel.metadata.create_all(engine)
    engine.dispose()
    return clean


def medvault(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MEDVAULT), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stored_user(env: dict[str, str], login: str) -> User | None:
    settings = Settings(
        data_dir=Path(env["MEDVAULT_DATA_DIR"]), database_url=env["MEDVAULT_DATABASE_URL"]
    )
    digest = login_digest(derive_secrets(settings).login_lookup_key, login)
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as session:
            return session.exec(select(User).where(User.login_digest == digest)).first()
    finally:
        engine.dispose()


def assert_one_line_failure(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [f"medvault: {reason}"]


def test_user_add_reads_the_password_from_stdin(env: dict[str, str]) -> None:
    result = medvault(
        "user", "add", "K.Schmidt", "--role", "coordinator", env=env, stdin=PASSWORD + "\n"
    )

    assert result.returncode == 0, result.stderr
    user = stored_user(env, "k.schmidt")
    assert user is not None
    assert user.role is Role.COORDINATOR
    assert verify_password(user.password_hash, PASSWORD)
    assert PASSWORD not in result.stdout + result.stderr
    assert "K.Schmidt" not in result.stdout


def test_user_add_refuses_a_taken_login_and_a_weak_password(env: dict[str, str]) -> None:
    assert (
        medvault("user", "add", "admin", "--role", "admin", env=env, stdin=PASSWORD).returncode == 0
    )

    taken = medvault("user", "add", "ADMIN", "--role", "analyst", env=env, stdin=PASSWORD)
    weak = medvault("user", "add", "other", "--role", "analyst", env=env, stdin="short\n")

    assert_one_line_failure(taken, "this login is already in use")
    assert_one_line_failure(weak, "a password needs at least 12 characters")
    assert stored_user(env, "other") is None


def test_user_add_refuses_the_patient_role(env: dict[str, str]) -> None:
    result = medvault("user", "add", "p", "--role", "patient", env=env, stdin=PASSWORD)
    assert_one_line_failure(result, "patients register themselves or are invited by a coordinator")
    assert stored_user(env, "p") is None


def test_password_is_never_an_argument(env: dict[str, str]) -> None:
    result = medvault("user", "add", "x", "--role", "admin", "--password", PASSWORD, env=env)
    assert result.returncode != 0
    assert stored_user(env, "x") is None


def test_user_disable(env: dict[str, str]) -> None:
    medvault("user", "add", "analyst", "--role", "analyst", env=env, stdin=PASSWORD)

    result = medvault("user", "disable", "Analyst", env=env)
    unknown = medvault("user", "disable", "nobody", env=env)

    assert result.returncode == 0, result.stderr
    user = stored_user(env, "analyst")
    assert user is not None
    assert user.disabled_at is not None
    assert_one_line_failure(unknown, "no such user")
    engine = make_engine(env["MEDVAULT_DATABASE_URL"])
    with Session(engine) as session:
        actions = [event.action for event in session.exec(select(AuditEvent))]
    engine.dispose()
    assert actions == ["user.create", "user.disable"]
