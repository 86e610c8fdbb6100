"""A worker whose connection to Redis drops while it holds a task: it must stay up, reconnect
and serve the next task (the fault suite found it exiting instead; see workers/consumer.py)."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.faultproxy import FaultProxy
from tests.workers.conftest import (
    WorkerProcess,
    embedded_env,
    process_group_pids,
    require_redis_url,
    wait_until,
)
from tests.workers.test_celery import client_for

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 3.0
# Whether the loss is first seen while the worker waits on the queue (which ended it) or on
# another of its connections is a race: a few outages make it all but certain to be met.
OUTAGES = 3
SETTLE_SECONDS = 2.0


def held_tasks_received(worker: WorkerProcess, count: int) -> bool:
    return worker.log().count(" received") >= count


def test_a_worker_holding_a_task_survives_a_broker_outage_and_serves_again(
    tmp_path: Path,
) -> None:
    redis_url = require_redis_url()
    target = urlsplit(redis_url)
    env = embedded_env(tmp_path)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        env["MEDVAULT_BROKER_URL"] = f"redis://127.0.0.1:{proxy.port}{target.path}"
        worker = WorkerProcess(env, tmp_path / "worker.log")
        try:
            with client_for(env | {"MEDVAULT_BROKER_URL": redis_url}) as client:
                for outage in range(OUTAGES):
                    # A task with a countdown is held unacknowledged until it is due, like a
                    # running task (every medvault task acknowledges when it ends).
                    client.send_task("celery.accumulate", args=[f"held-{outage}"], countdown=600)
                    wait_until(partial(held_tasks_received, worker, outage + 1))
                    time.sleep(SETTLE_SECONDS)  # back to waiting on the broker, as mostly
                    proxy.down()
                    time.sleep(OUTAGE_SECONDS)
                    proxy.up()

                    after = client.send_task("celery.accumulate", args=[f"after-{outage}"])
                    assert after.get(timeout=60) == [f"after-{outage}"]
            assert worker.pid in process_group_pids(worker.pid), worker.log()[-2000:]
            assert "Unrecoverable error" not in worker.log()
        finally:
            worker.stop()
