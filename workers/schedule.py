"""What beat sends, and when (UTC). Each task decides for itself whether anything is due, so a
run that comes late, twice, or after a missed day does the right thing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.schedules import crontab

from infra.tasks import (
    EXPORTS_SWEEP,
    EXTRACTS_SWEEP,
    KEYS_ROTATE,
    RETENTION_PURGE,
    RETENTION_RUN,
    STORAGE_SWEEP,
)

# Nightly, spread out so that the heavy jobs do not run at once.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "retention-run-daily": {"task": RETENTION_RUN, "schedule": crontab(hour=2, minute=0)},
    "retention-purge-daily": {"task": RETENTION_PURGE, "schedule": crontab(hour=2, minute=30)},
    # Daily: the task rotates only when the active root key is older than the rotation period,
    # and destroys retired keys once the backup window has passed.
    "keys-rotate-daily": {"task": KEYS_ROTATE, "schedule": crontab(hour=3, minute=0)},
    # Re-sends extract builds whose message was lost (broker down at request time, a worker
    # killed with the whole process group on a broker that does not redeliver).
    "extracts-sweep": {"task": EXTRACTS_SWEEP, "schedule": timedelta(minutes=10)},
    # Deletes data-subject exports past their few days (and what a failed delete left), and
    # re-sends export builds whose message was lost, like the extracts sweep.
    "exports-sweep": {"task": EXPORTS_SWEEP, "schedule": timedelta(minutes=10)},
    # Deletes objects no row owns (an upload whose process died between object and row) and
    # aborts unfinished multipart uploads, both older than a day (vault.storage.sweep).
    "storage-sweep-daily": {"task": STORAGE_SWEEP, "schedule": crontab(hour=4, minute=0)},
}
