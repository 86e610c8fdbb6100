"""QA extract tasks: build one extract, and the sweep that re-sends lost builds and shreds
expired extracts. Both are idempotent (``vault.extracts.service``): a build delivered twice,
or again after its worker was killed, ends with one ready extract and one set of objects."""

from __future__ import annotations

import uuid
from datetime import timedelta

from infra.tasks import EXTRACTS_BUILD, EXTRACTS_SWEEP
from vault.clock import utcnow
from vault.extracts.service import build_extract, sweep_extracts
from workers.app import medvault_task
from workers.runtime import worker_runtime


@medvault_task(EXTRACTS_BUILD)
def build(extract_id: str) -> str:
    """Build one extract; returns its status (no personal data in the result)."""
    runtime = worker_runtime()
    status = build_extract(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        extract_id=uuid.UUID(extract_id),
        retention=timedelta(days=runtime.settings.extract_retention_days),
        frame_size=runtime.frame_size,
        now=utcnow(),
        spool_dir=runtime.spool_dir,
    )
    return status.value


@medvault_task(EXTRACTS_SWEEP)
def sweep() -> dict[str, int]:
    """Re-send builds that stayed pending; shred extracts past their retention."""
    runtime = worker_runtime()
    report = sweep_extracts(
        sessions=runtime.sessions,
        store=runtime.blob_store,
        keys=runtime.key_store,
        now=utcnow(),
    )
    for extract_id in report.requeue:
        runtime.tasks.enqueue(EXTRACTS_BUILD, str(extract_id))
    return {"requeued": len(report.requeue), "shredded": report.shredded}
