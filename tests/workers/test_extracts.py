"""QA extracts with a real worker process (embedded broker and Redis): end to end, and a build
killed with SIGKILL at random points that still ends ready exactly once, with one set of objects."""

from __future__ import annotations

import io
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import pyarrow.parquet as pq
import pytest
from sqlmodel import Session, select

import vault.extracts.models
import vault.surveys.models  # noqa: F401 - their tables, until infra.models lists them
from infra.tasks import EXTRACTS_BUILD
from infra.wiring import Runtime
from tests.factories import NOW, Vault, intake_limits, make_qa_case, make_qa_patient
from tests.workers.conftest import WorkerProcess, runtime_for, settings_for, wait_until
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.extracts.models import Extract, ExtractField, ExtractFormat, ExtractStatus
from vault.extracts.service import extract_prefix, open_extract_content, request_extract

ANALYST = uuid.uuid4()


@pytest.fixture
def runtime(worker_env: dict[str, str]) -> Iterator[Runtime]:
    runtime = runtime_for(worker_env)
    try:
        yield runtime
    finally:
        runtime.close()


def seed(runtime: Runtime, cases: int) -> None:
    with runtime.sessions() as session:
        vault = Vault(
            session=session,
            store=runtime.blob_store,
            keys=runtime.key_store,
            spool_dir=runtime.spool_dir,
            limits=intake_limits(),
        )
        for index in range(cases):
            patient = make_qa_patient(
                session, vault.keys, birth_date=date(1950 + index % 40, 1, 1), sex="female"
            )
            make_qa_case(vault, patient)


def request(runtime: Runtime) -> uuid.UUID:
    with runtime.sessions() as session:
        extract = request_extract(
            session=session,
            keys=runtime.key_store,
            analyst_id=ANALYST,
            period_from=date(2026, 11, 1),
            period_to=date(2026, 11, 30),
            fields=list(ExtractField),
            icd_chapter_only=False,
            scope_id=None,
            k=runtime.settings.extract_k,
            now=NOW,
            audit=AuditContext.SYSTEM,
        )
        return extract.id


def current(runtime: Runtime, extract_id: uuid.UUID) -> Extract:
    with runtime.sessions() as session:
        extract = session.get(Extract, extract_id)
        assert extract is not None
        return extract


def parquet_rows(runtime: Runtime, extract_id: uuid.UUID) -> int:
    with runtime.sessions() as session:
        chunks = open_extract_content(
            session=session,
            store=runtime.blob_store,
            keys=runtime.key_store,
            extract_id=extract_id,
            analyst_id=ANALYST,
            fmt=ExtractFormat.PARQUET,
            now=NOW,
            audit=AuditContext.SYSTEM,
        )
        return int(pq.read_table(io.BytesIO(b"".join(chunks))).num_rows)


def build_events(runtime: Runtime, extract_id: uuid.UUID) -> list[AuditEvent]:
    with Session(runtime.engine) as session:
        return list(
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "extract.build", AuditEvent.document_id == extract_id
                )
            )
        )


def assert_ready_once(runtime: Runtime, extract_id: uuid.UUID, cases: int) -> None:
    extract = current(runtime, extract_id)
    assert extract.status is ExtractStatus.READY
    assert extract.report is not None
    assert extract.report["rows"] + extract.report["suppressed"] == cases
    assert len(build_events(runtime, extract_id)) == 1
    objects = set(runtime.blob_store.keys(extract_prefix(extract_id)))
    assert objects == {extract.parquet_key, extract.csv_key}
    assert parquet_rows(runtime, extract_id) == extract.report["rows"]


def test_a_worker_builds_an_extract_end_to_end(worker: WorkerProcess, runtime: Runtime) -> None:
    seed(runtime, 12)
    extract_id = request(runtime)
    runtime.tasks.enqueue(EXTRACTS_BUILD, str(extract_id))
    wait_until(
        lambda: current(runtime, extract_id).status is ExtractStatus.READY, what="the extract"
    )
    assert_ready_once(runtime, extract_id, 12)
    # A re-delivered message changes nothing.
    runtime.tasks.enqueue(EXTRACTS_BUILD, str(extract_id))
    time.sleep(1)
    assert_ready_once(runtime, extract_id, 12)


def test_a_build_killed_at_random_points_ends_ready_exactly_once(
    worker: WorkerProcess, runtime: Runtime, worker_env: dict[str, str]
) -> None:
    cases = 300
    seed(runtime, cases)
    extract_ids = [request(runtime)]
    database = settings_for(worker_env).database_url.removeprefix("sqlite:///")
    rng = random.Random()
    kills = 0
    for _ in range(12):
        if kills == 3:
            break
        # Every step of a build (each batch of each pass, the final commit) opens a transaction,
        # which waits while this test holds the write lock: once the build has claimed the
        # extract it runs a random moment, is stopped at its next step and killed there.
        runtime.tasks.enqueue(EXTRACTS_BUILD, str(extract_ids[-1]))
        claimed_by_build(database, extract_ids[-1])
        time.sleep(rng.uniform(0.0, 0.03))
        with _write_lock(database):
            finished_first = current_in(database, extract_ids[-1]) == "READY"
            if not finished_first:
                worker.restart()  # SIGKILL the worker and its pool, then start it again
                kills += 1
        if finished_first:  # the build beat the lock: try again with a new extract
            extract_ids.append(request(runtime))
    # What the sweep does for a build whose message died with the worker: send it again.
    for extract_id in extract_ids:
        runtime.tasks.enqueue(EXTRACTS_BUILD, str(extract_id))
    for extract_id in extract_ids:
        wait_until(
            lambda extract_id=extract_id: (
                current(runtime, extract_id).status is ExtractStatus.READY
            ),
            what="the extract",
        )
        assert_ready_once(runtime, extract_id, cases)
    assert kills >= 1


def claimed_by_build(database: str, extract_id: uuid.UUID, timeout: float = 60.0) -> None:
    """Return as soon as a build has claimed the extract (polled tightly: builds are quick)."""
    deadline = time.monotonic() + timeout
    while current_in(database, extract_id) == "REQUESTED":
        assert time.monotonic() < deadline, "no build claimed the extract"
        time.sleep(0.002)


def current_in(database: str, extract_id: uuid.UUID) -> str:
    """The extract's status read with plain sqlite3 (inside the test's own lock)."""
    connection = sqlite3.connect(database)
    try:
        (status,) = connection.execute(
            "SELECT status FROM extracts WHERE id = ?", (extract_id.hex,)
        ).fetchone()
        return str(status)
    finally:
        connection.close()


@contextmanager
def _write_lock(database: str) -> Iterator[None]:
    connection = sqlite3.connect(database, isolation_level=None, timeout=60)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()
