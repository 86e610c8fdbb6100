"""Retention runs killed with SIGKILL at random points, again and again, then run to the end:
every case is untouched or fully shredded, never in between, and no event is doubled.
Also ``medvault retention run --dry-run`` as the real console script."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, SQLModel, col, select

from infra.settings import Settings
from infra.wiring import Runtime, build_runtime
from keys.models import KeyRecord, RootKeyRecord, RootKeyState
from tests.factories import NOW, Vault, intake_limits, make_completed_case, make_patient
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.audit.verify import verify_chain
from vault.cases.models import Case, CaseStatus
from vault.documents.models import Document
from vault.documents.service import read_document
from vault.errors import Gone
from vault.patients.models import Patient

AFTER_EPOCH = datetime(2031, 12, 1, 0, 0, tzinfo=UTC)  # NOW + 5 years, and that month is over
ROUNDS = 10
MEDVAULT = Path(sys.executable).with_name("medvault")
REPO = Path(__file__).resolve().parents[2]

CHILD = """
import sys
from datetime import datetime
from infra.settings import Settings
from infra.wiring import build_runtime
from vault.retention.service import run_retention

runtime = build_runtime(Settings())
with runtime.sessions() as session:
    print("ready", flush=True)
    run_retention(
        session=session,
        store=runtime.blob_store,
        keys=runtime.key_store,
        retention_years=5,
        now=datetime.fromisoformat(sys.argv[1]),
    )
print("done", flush=True)
"""


@dataclass(frozen=True)
class Made:
    case_id: uuid.UUID
    key_id: uuid.UUID
    documents: dict[uuid.UUID, bytes]  # id -> plaintext


def env_for(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEDVAULT_")}
    env["MEDVAULT_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "160"  # rich wraps tables to the terminal width
    return env


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    import infra.models  # noqa: F401 - registers every table on SQLModel.metadata

    built = build_runtime(Settings(data_dir=tmp_path / "data"))
    SQLModel.metadata.create_all(built.engine)
    yield built
    built.close()


def make_cases(runtime: Runtime, *, due: int, not_due: int) -> tuple[list[Made], list[Made]]:
    """``due`` cases (two per patient) due at AFTER_EPOCH, and ``not_due`` completed later."""
    made: tuple[list[Made], list[Made]] = ([], [])
    with runtime.sessions() as session:
        vault = Vault(
            session, runtime.blob_store, runtime.key_store, runtime.spool_dir, intake_limits()
        )
        patient = None
        for index in range(due + not_due):
            if index % 2 == 0:
                patient = make_patient(session, runtime.key_store)
            later = index >= due
            completed = NOW + timedelta(days=400 if later else 0)
            case, documents = make_completed_case(
                vault, patient=patient, completed_at=completed, documents=1 + index % 2
            )
            plaintexts = {doc.id: b"".join(vault.read(doc.id).chunks) for doc in documents}
            made[later].append(Made(case.id, case.key_id, plaintexts))
    return made


def readable(session: Session, runtime: Runtime, document_id: uuid.UUID) -> bytes | None:
    try:
        stream = read_document(
            session=session,
            store=runtime.blob_store,
            keys=runtime.key_store,
            document_id=document_id,
            now=AFTER_EPOCH,
            audit=AuditContext.SYSTEM,
        )
    except Gone:
        return None
    return b"".join(stream.chunks)


def check_every_case(runtime: Runtime, cases: list[Made]) -> dict[CaseStatus, int]:
    """Each case is untouched, marked (unreadable, key alive), or fully shredded."""
    seen: dict[CaseStatus, int] = {}
    with runtime.sessions() as session:
        shred_events = list(
            session.exec(select(col(AuditEvent.case_id)).where(AuditEvent.action == "case.shred"))
        )
        assert len(shred_events) == len(set(shred_events)), "a case.shred event was doubled"
        for made in cases:
            case = session.get(Case, made.case_id, populate_existing=True)
            key = session.get(KeyRecord, made.key_id, populate_existing=True)
            assert case is not None
            assert key is not None
            documents = session.exec(select(Document).where(Document.case_id == made.case_id)).all()
            seen[case.status] = seen.get(case.status, 0) + 1
            if case.status is CaseStatus.SHREDDED:
                assert key.wrapped is None
                assert key.destroyed_at is not None
                assert case.outcome_sealed is None
                assert case.shredded_at is not None
                for document in documents:
                    assert (document.wrapped_dek, document.filename_sealed) == (b"", b"")
                    assert document.shredded_at is not None
                    assert not runtime.blob_store.exists(document.object_key)
                assert shred_events.count(made.case_id) == 1
                continue
            assert key.wrapped is not None, "a key destroyed before its case was marked shredded"
            assert case.outcome_sealed is not None
            assert case.shredded_at is None
            assert made.case_id not in shred_events
            assert all(document.shredded_at is None for document in documents)
            for document_id, plaintext in made.documents.items():
                got = readable(session, runtime, document_id)
                if case.status is CaseStatus.COMPLETED:
                    assert got == plaintext  # untouched: every byte still there
                else:
                    assert case.status is CaseStatus.SHREDDING
                    assert got is None  # marked: gone for every reader already
        erased = list(
            session.exec(
                select(col(AuditEvent.patient_id)).where(AuditEvent.action == "patient.erase")
            )
        )
        assert len(erased) == len(set(erased))
    return seen


def run_and_kill(data_dir: Path, delay: float | None) -> bool:
    """Run the retention job in a child; SIGKILL it ``delay`` seconds into the run. True if
    it was killed before it finished."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, AFTER_EPOCH.isoformat()],
        env=env_for(data_dir),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        if delay is None:
            _out, err = child.communicate(timeout=300)
            assert child.returncode == 0, err
            return False
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=60)
        return child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_sigkill_at_random_points_leaves_nothing_half_shredded(
    runtime: Runtime, tmp_path: Path
) -> None:
    due, not_due = make_cases(runtime, due=60, not_due=10)
    everything = due + not_due
    delays = random.Random(4).sample([i / 100 for i in range(1, 40)], ROUNDS)

    killed = 0
    for delay in sorted(delays):
        killed += run_and_kill(tmp_path / "data", delay)
        check_every_case(runtime, everything)
    run_and_kill(tmp_path / "data", None)
    final = check_every_case(runtime, everything)

    assert killed >= 1, "no run was interrupted: the test proved nothing"
    assert final == {CaseStatus.SHREDDED: len(due), CaseStatus.COMPLETED: len(not_due)}
    with runtime.sessions() as session:
        erased = session.exec(select(Patient).where(col(Patient.erased_at).is_not(None))).all()
        assert len(erased) == len(due) // 2  # two due cases per patient, nothing else
        epoch = session.exec(select(RootKeyRecord).where(RootKeyRecord.epoch == "2031-11")).one()
        assert epoch.state is RootKeyState.DESTROYED
        report = verify_chain(
            session, store=runtime.blob_store, signing_key=runtime.secrets.audit_signing_key
        )
        assert report.ok, report.reason


def test_the_cli_dry_run_lists_due_and_next_cases(runtime: Runtime, tmp_path: Path) -> None:
    make_cases(runtime, due=2, not_due=2)

    result = subprocess.run(
        [str(MEDVAULT), "retention", "run", "--dry-run"],
        env=env_for(tmp_path / "data"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # The real clock is used: nothing completed in 2026 is due yet, all four come next.
    assert result.returncode == 0, result.stderr
    assert "would be shredded" in result.stdout
    assert "0 case(s)" in result.stdout
    assert "next due" in result.stdout
    with runtime.sessions() as session:
        ids = session.exec(select(col(Case.id))).all()
        statuses = set(session.exec(select(col(Case.status))).all())
    assert statuses == {CaseStatus.COMPLETED}
    for case_id in ids:
        assert str(case_id)[:8] in result.stdout
