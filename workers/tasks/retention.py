"""Retention tasks: the daily shred run and the daily purge of expired logs. Thin: each opens a
session, calls one vault service with the current time, and returns a count-only summary
(never ids of people, never personal data). Both are idempotent: a re-delivered message after
a crash finishes what the first delivery left (``vault.retention.service``)."""

from __future__ import annotations

from infra.tasks import RETENTION_PURGE, RETENTION_RUN
from vault.clock import utcnow
from vault.retention.service import purge_expired_logs, run_retention
from workers.app import medvault_task
from workers.observability import count_retention
from workers.runtime import worker_session


@medvault_task(RETENTION_RUN)
def run() -> dict[str, int]:
    """Shred every due case, finish interrupted shreds, destroy past epochs' root keys."""
    with worker_session() as (runtime, session):
        report = run_retention(
            session=session,
            store=runtime.blob_store,
            keys=runtime.key_store,
            retention_years=runtime.settings.retention_years,
            now=utcnow(),
        )
    count_retention(shredded=len(report.shredded), patients_erased=report.patients_erased)
    return {
        "due": len(report.due),
        "shredded": len(report.shredded),
        "held": len(report.held),
        "patients_erased": report.patients_erased,
        "epochs_destroyed": len(report.epochs_destroyed),
    }


@medvault_task(RETENTION_PURGE)
def purge() -> dict[str, int]:
    """Delete expired access-log files and drop the audit chain's expired, sealed prefix."""
    with worker_session() as (runtime, session):
        report = purge_expired_logs(
            session=session,
            store=runtime.blob_store,
            signing_key=runtime.secrets.audit_signing_key,
            access_log_dir=runtime.settings.access_log_dir,
            keep_days=runtime.settings.access_log_retention_days,
            now=utcnow(),
        )
    return {
        "access_logs_deleted": len(report.access_logs_deleted),
        "audit_events_dropped": report.audit.dropped,
    }
