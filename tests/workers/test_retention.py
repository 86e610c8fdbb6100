"""The retention tasks on a real ``medvault worker``, over each broker.

The worker uses the real clock, so the clock is injected through the cases instead: some were
completed five years ago less a day (the day before their due date: nothing happens), others
five years ago and a day (the day after: all of them are shredded).
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from infra.tasks import KEYS_ROTATE, RETENTION_PURGE, RETENTION_RUN
from infra.wiring import Runtime
from tests.factories import intake_limits, make_patient, png_bytes
from tests.workers.conftest import WorkerProcess, runtime_for
from tests.workers.test_celery import client_for
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseStatus
from vault.cases.service import complete_case, open_case
from vault.documents.models import Document, DocumentKind
from vault.documents.service import store_document

pytestmark = pytest.mark.slow


def completed_case(runtime: Runtime, *, completed_at: datetime) -> uuid.UUID:
    """A case opened a year before ``completed_at``, with one document, completed then."""
    opened = completed_at - timedelta(days=365)
    with runtime.sessions() as session:
        patient = make_patient(session, runtime.key_store)
        case = open_case(
            session=session,
            keys=runtime.key_store,
            patient_id=patient.id,
            now=opened,
            audit=AuditContext.SYSTEM,
        )
        store_document(
            session=session,
            store=runtime.blob_store,
            keys=runtime.key_store,
            case_id=case.id,
            kind=DocumentKind.RECORD,
            filename="scan.png",
            source=io.BytesIO(png_bytes(8, 8)),
            limits=intake_limits(),
            spool_dir=runtime.spool_dir,
            frame_size=runtime.frame_size,
            now=opened,
            audit=AuditContext.SYSTEM,
        )
        complete_case(
            session=session,
            keys=runtime.key_store,
            case_id=case.id,
            completed_at=completed_at,
            retention_years=runtime.settings.retention_years,
            now=completed_at,
            audit=AuditContext.SYSTEM,
        )
        return case.id


def test_the_daily_tasks_shred_what_is_due_and_nothing_else(
    worker: WorkerProcess, worker_env: dict[str, str]
) -> None:
    runtime = runtime_for(worker_env)
    try:
        now = datetime.now(UTC)
        years = runtime.settings.retention_years
        five_years_ago = now.replace(year=now.year - years)
        due = [completed_case(runtime, completed_at=five_years_ago - timedelta(days=1))]
        due.append(completed_case(runtime, completed_at=five_years_ago - timedelta(days=2)))
        not_due = completed_case(runtime, completed_at=five_years_ago + timedelta(days=1))

        with client_for(worker_env) as client:
            summary = client.send_task(RETENTION_RUN).get(timeout=120)
            again = client.send_task(RETENTION_RUN).get(timeout=120)
            purged = client.send_task(RETENTION_PURGE).get(timeout=120)
            rotated = client.send_task(KEYS_ROTATE).get(timeout=120)

        assert summary["shredded"] == 2
        assert summary["patients_erased"] == 2
        assert again["shredded"] == 0
        assert purged["audit_events_dropped"] == 0  # nothing is 13 months old here
        # The two erased patients' keys were wrapped under the active root key: a backup
        # taken before still holds them, so the root key is rotated at once (rotation_due).
        assert rotated["rotated"] == 1
        with runtime.sessions() as session:
            statuses = dict(session.exec(select(col(Case.id), col(Case.status))).all())
            assert statuses == {
                due[0]: CaseStatus.SHREDDED,
                due[1]: CaseStatus.SHREDDED,
                not_due: CaseStatus.COMPLETED,
            }
            for document in session.exec(select(Document)).all():
                assert runtime.blob_store.exists(document.object_key) is (
                    document.case_id == not_due
                )
            shreds = session.exec(
                select(col(AuditEvent.case_id)).where(AuditEvent.action == "case.shred")
            ).all()
            assert len(shreds) == len(due)
            assert set(shreds) == set(due)
    finally:
        runtime.close()
