"""The storage sweep task on a real ``medvault worker``, over each broker: it deletes an
orphaned object older than a day, spares a young one, and answers with counts only."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from infra.tasks import STORAGE_SWEEP
from tests.workers.conftest import WorkerProcess, settings_for
from tests.workers.test_celery import client_for
from vault.clock import utcnow

pytestmark = pytest.mark.slow


def test_the_sweep_task_deletes_an_old_orphan_and_spares_a_young_one(
    worker: WorkerProcess, worker_env: dict[str, str]
) -> None:
    objects = Path(settings_for(worker_env).objects_dir) / "objects" / "cases" / str(uuid.uuid4())
    objects.mkdir(parents=True)
    old, young = objects / "old-doc", objects / "young-doc"
    for path in (old, young):
        path.write_bytes(b"ciphertext no row points to")
    two_days_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(old, (two_days_ago, two_days_ago))

    with client_for(worker_env) as client:
        summary = client.send_task(STORAGE_SWEEP).get(timeout=120)

    assert summary == {
        "objects_checked": 2,
        "orphans_found": 1,
        "orphans_deleted": 1,
        "uploads_aborted": 0,
    }
    assert not old.exists()
    assert young.exists()
