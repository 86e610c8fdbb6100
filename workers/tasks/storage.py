"""The storage sweep task: deletes objects no row owns and aborts unfinished uploads, both
older than a day (``vault.storage.sweep``). Idempotent; returns counts only, never keys."""

from __future__ import annotations

from infra.tasks import STORAGE_SWEEP
from vault.clock import utcnow
from vault.storage.sweep import sweep_storage
from workers.app import medvault_task
from workers.runtime import worker_runtime


@medvault_task(STORAGE_SWEEP)
def sweep() -> dict[str, int]:
    """Sweep the object store once with the default grace period."""
    runtime = worker_runtime()
    report = sweep_storage(sessions=runtime.sessions, store=runtime.blob_store, now=utcnow())
    return {
        "objects_checked": report.objects_checked,
        "orphans_found": report.orphans_found,
        "orphans_deleted": report.orphans_deleted,
        "uploads_aborted": report.uploads_aborted,
    }
