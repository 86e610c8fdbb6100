"""Data-subject export tasks (Art. 15/20): build one export, and the sweep that deletes expired
exports and re-sends lost builds. Both take ids only and are idempotent
(``vault.subject_rights.exports``): a build delivered twice, or again after its worker was
killed, ends with one ready export and one object."""

from __future__ import annotations

import uuid
from datetime import timedelta

from infra.tasks import EXPORTS_BUILD, EXPORTS_SWEEP
from vault.clock import utcnow
from vault.subject_rights.exports import build_export, sweep_exports
from workers.app import medvault_task
from workers.runtime import worker_runtime


@medvault_task(EXPORTS_BUILD)
def build(export_id: str) -> str:
    """Build one export; returns its status (no personal data in the result)."""
    runtime = worker_runtime()
    status = build_export(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        export_id=uuid.UUID(export_id),
        retention_years=runtime.settings.retention_years,
        export_retention=timedelta(days=runtime.settings.export_retention_days),
        frame_size=runtime.frame_size,
        now=utcnow(),
    )
    return status.value


@medvault_task(EXPORTS_SWEEP)
def sweep() -> dict[str, int]:
    """Delete exports past their few days; re-send builds that stayed pending."""
    runtime = worker_runtime()
    report = sweep_exports(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        now=utcnow(),
    )
    for export_id in report.requeue:
        runtime.tasks.enqueue(EXPORTS_BUILD, str(export_id))
    return {"requeued": len(report.requeue), "deleted": report.deleted}
