"""``medvault audit verify`` and ``medvault audit checkpoint``, run as the real console script."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from infra.db import make_engine
from tests.factories import make_audit_events
from vault.audit.checkpoints import checkpoint_key
from vault.audit.models import AuditEvent
from vault.storage.local import LocalFolderBlobStore

MEDVAULT = Path(sys.executable).with_name("medvault")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[sa.Engine]:
    """The embedded SQLite database the command will use, with every table and 5 events."""
    import infra.models  # noqa: F401 - registers every table on SQLModel.metadata

    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'medvault.db'}")
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        make_audit_events(session, 5)
    yield engine
    engine.dispose()


def medvault(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEDVAULT_")}
    env["MEDVAULT_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [str(MEDVAULT), "audit", *args],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_checkpoint_then_verify(database: sa.Engine, tmp_path: Path) -> None:
    written = medvault("checkpoint", tmp_path=tmp_path)
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == "audit checkpoint written at event 5"
    assert LocalFolderBlobStore(tmp_path / "data" / "objects").exists(checkpoint_key(5))

    verified = medvault("verify", tmp_path=tmp_path)
    assert verified.returncode == 0, verified.stderr
    # 5 events, then the checkpoint command's own audit.checkpoint event.
    assert verified.stdout.strip() == "audit chain ok: 6 events, 1 checkpoints"

    again = medvault("verify", tmp_path=tmp_path)
    assert again.stdout.strip() == "audit chain ok: 7 events, 1 checkpoints"  # + audit.verify


def test_verify_reports_the_first_broken_event(database: sa.Engine, tmp_path: Path) -> None:
    events = AuditEvent.__table__  # type: ignore[attr-defined]
    with database.begin() as connection:
        connection.execute(sa.update(events).where(events.c.seq == 3).values(outcome="denied"))

    result = medvault("verify", tmp_path=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        "medvault: audit chain broken at event 3: hash mismatch"
    ]
