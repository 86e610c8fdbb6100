"""Data-subject exports with a real worker process (embedded broker and Redis): end to end, and
a build killed with SIGKILL at random points that still ends ready exactly once, with one
archive object."""

from __future__ import annotations

import io
import json
import random
import sqlite3
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from infra.tasks import EXPORTS_BUILD
from infra.wiring import Runtime
from tests.factories import Vault, intake_limits, make_case, make_patient, png_bytes
from tests.workers.conftest import WorkerProcess, runtime_for, settings_for, wait_until
from tests.workers.test_extracts import _write_lock
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.clock import utcnow
from vault.subject_rights.exports import (
    export_prefix,
    link_signature,
    open_export_download,
    request_export,
)
from vault.subject_rights.models import ExportStatus, Right, SubjectExport


@pytest.fixture
def runtime(worker_env: dict[str, str]) -> Iterator[Runtime]:
    runtime = runtime_for(worker_env)
    try:
        yield runtime
    finally:
        runtime.close()


def seed(runtime: Runtime, documents: int) -> tuple[uuid.UUID, dict[uuid.UUID, str]]:
    """A patient with ``documents`` documents in one case; their ids with their SHA-256."""
    with runtime.sessions() as session:
        vault = Vault(
            session=session,
            store=runtime.blob_store,
            keys=runtime.key_store,
            spool_dir=runtime.spool_dir,
            limits=intake_limits(),
        )
        patient = make_patient(session, vault.keys)
        case = make_case(session, vault.keys, patient)
        stored = [vault.upload(case, png_bytes(64, 64, seed=index)) for index in range(documents)]
        return patient.id, {document.id: document.sha256 for document in stored}


def request(runtime: Runtime, patient_id: uuid.UUID) -> uuid.UUID:
    with runtime.sessions() as session:
        found = request_export(
            session=session,
            patient_id=patient_id,
            right=Right.PORTABILITY,
            now=utcnow(),
            audit=AuditContext.SYSTEM,
        )
        return found.export.id


def current(runtime: Runtime, export_id: uuid.UUID) -> SubjectExport:
    with runtime.sessions() as session:
        export = session.get(SubjectExport, export_id)
        assert export is not None
        return export


def unpacked(runtime: Runtime, export_id: uuid.UUID) -> zipfile.ZipFile:
    now = utcnow()
    expires = int((now + timedelta(minutes=5)).timestamp())
    key = runtime.secrets.export_link_key
    with runtime.sessions() as session:
        download = open_export_download(
            session=session,
            store=runtime.blob_store,
            keys=runtime.key_store,
            link_key=key,
            export_id=export_id,
            expires=expires,
            signature=link_signature(key, export_id, expires),
            now=now,
            audit=AuditContext.SYSTEM,
        )
        return zipfile.ZipFile(io.BytesIO(b"".join(download.chunks)))


def build_events(runtime: Runtime, export_id: uuid.UUID) -> list[AuditEvent]:
    with Session(runtime.engine) as session:
        return list(
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "export.build", AuditEvent.document_id == export_id
                )
            )
        )


def assert_ready_once(
    runtime: Runtime, export_id: uuid.UUID, documents: dict[uuid.UUID, str]
) -> None:
    export = current(runtime, export_id)
    assert export.status is ExportStatus.READY
    assert len(build_events(runtime, export_id)) == 1
    assert set(runtime.blob_store.keys(export_prefix(export_id))) == {export.object_key}
    archive = unpacked(runtime, export_id)
    assert archive.testzip() is None
    listed = json.loads(archive.read("data.json"))["documents"]
    assert {uuid.UUID(item["id"]): item["sha256"] for item in listed} == documents
    assert "fhir-bundle.json" in archive.namelist()


def test_a_worker_builds_an_export_end_to_end(worker: WorkerProcess, runtime: Runtime) -> None:
    patient_id, documents = seed(runtime, 3)
    export_id = request(runtime, patient_id)
    runtime.tasks.enqueue(EXPORTS_BUILD, str(export_id))
    wait_until(
        lambda: current(runtime, export_id).status is not ExportStatus.PENDING, what="the export"
    )
    assert_ready_once(runtime, export_id, documents)
    # A re-delivered message changes nothing.
    runtime.tasks.enqueue(EXPORTS_BUILD, str(export_id))
    time.sleep(1)
    assert_ready_once(runtime, export_id, documents)
    with Session(runtime.engine) as session:
        reads = session.exec(
            select(AuditEvent.document_id).where(AuditEvent.action == "document.read")
        ).all()
    assert set(reads) == set(documents)  # each read on the patient's behalf is on record


def test_a_build_killed_at_random_points_ends_ready_exactly_once(
    worker: WorkerProcess, runtime: Runtime, worker_env: dict[str, str]
) -> None:
    patient_id, documents = seed(runtime, 12)
    export_ids = [request(runtime, patient_id)]
    database = settings_for(worker_env).database_url.removeprefix("sqlite:///")
    rng = random.Random()
    kills = 0
    for _ in range(12):
        if kills == 3:
            break
        # Every step of a build (collecting, reading each document, the final commit) opens a
        # transaction, which waits while this test holds the write lock: once the build has
        # claimed the export it runs a random moment, is stopped at its next step, killed there.
        claimed_before = build_id_in(database, export_ids[-1])
        runtime.tasks.enqueue(EXPORTS_BUILD, str(export_ids[-1]))
        claimed_by_build(database, export_ids[-1], claimed_before)
        time.sleep(rng.uniform(0.0, 0.03))
        with _write_lock(database):
            finished_first = status_in(database, export_ids[-1]) != "PENDING"
            if not finished_first:
                worker.restart()  # SIGKILL the worker and its pool, then start it again
                kills += 1
        if finished_first:  # the build beat the lock: try again with a new export
            export_ids.append(request(runtime, patient_id))
    # What the sweep does for a build whose message died with the worker: send it again.
    for export_id in export_ids:
        runtime.tasks.enqueue(EXPORTS_BUILD, str(export_id))
    for export_id in export_ids:
        wait_until(
            lambda export_id=export_id: (
                current(runtime, export_id).status is not ExportStatus.PENDING
            ),
            what="the export",
        )
        assert_ready_once(runtime, export_id, documents)
    assert kills >= 1
    leftovers = [
        key
        for key in runtime.blob_store.keys("exports/")
        if key not in {current(runtime, export_id).object_key for export_id in export_ids}
    ]
    assert leftovers == []


def claimed_by_build(
    database: str, export_id: uuid.UUID, before: object, timeout: float = 60.0
) -> None:
    """Return as soon as a new build has claimed the export (polled tightly: builds are quick)."""
    deadline = time.monotonic() + timeout
    while build_id_in(database, export_id) == before:
        assert time.monotonic() < deadline, "no build claimed the export"
        time.sleep(0.002)


def status_in(database: str, export_id: uuid.UUID) -> str:
    return str(_column_in(database, export_id, "status"))


def build_id_in(database: str, export_id: uuid.UUID) -> object:
    return _column_in(database, export_id, "build_id")


def _column_in(database: str, export_id: uuid.UUID, column: str) -> object:
    """A column of the export read with plain sqlite3 (inside the test's own lock)."""
    connection = sqlite3.connect(database)
    try:
        (value,) = connection.execute(
            f"SELECT {column} FROM subject_exports WHERE id = ?",
            (export_id.hex,),
        ).fetchone()
        return value
    finally:
        connection.close()
