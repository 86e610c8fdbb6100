"""The root-key maintenance task: rotate the active root key when it is old enough, destroy
retired root keys once the backup window has passed. Idempotent: a rotation that was killed
midway is resumed by the next delivery (``KeyStore.rotate``)."""

from __future__ import annotations

from infra.tasks import KEYS_ROTATE
from vault.clock import utcnow
from vault.retention.service import maintain_root_keys
from workers.app import medvault_task
from workers.runtime import worker_session


@medvault_task(KEYS_ROTATE)
def rotate() -> dict[str, int]:
    """Rotate when due (root_key_rotation_days) and destroy retired root keys (backup window)."""
    with worker_session() as (runtime, session):
        report = maintain_root_keys(
            session=session,
            keys=runtime.key_store,
            sessions=runtime.sessions,
            rotation_days=runtime.settings.root_key_rotation_days,
            backup_window_days=runtime.settings.backup_window_days,
            now=utcnow(),
        )
    return {
        "rotated": int(report.rotated),
        "rewrapped": report.rewrapped,
        "root_keys_destroyed": len(report.root_keys_destroyed),
    }
