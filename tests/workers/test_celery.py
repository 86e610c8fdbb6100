"""A real ``medvault worker`` process over each broker: it consumes what is sent, runs it, and a
task whose pool process is killed runs again; ``medvault up`` leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest
from celery import Celery
from celery.result import AsyncResult

from infra.tasks import KEYS_ROTATE, celery_config
from tests.conftest import free_port
from tests.workers.conftest import (
    MEDVAULT,
    WorkerProcess,
    child_env,
    embedded_env,
    process_group_pids,
    runtime_for,
    settings_for,
    wait_until,
)

pytestmark = pytest.mark.slow


@contextmanager
def client_for(env: dict[str, str]) -> Iterator[Celery]:
    """A Celery client of the worker's installation that can also read task results."""
    client = Celery("medvault-test-client", set_as_current=False)
    client.config_from_object(celery_config(settings_for(env)))
    try:
        yield client
    finally:
        client.close()


def test_the_worker_consumes_a_message_from_the_broker_and_runs_its_task(
    worker: WorkerProcess, worker_env: dict[str, str]
) -> None:
    # celery.accumulate is Celery's own, registered in every worker: it returns its arguments,
    # so its result proves this worker took the message from this broker and ran it.
    with client_for(worker_env) as client:
        result = client.send_task("celery.accumulate", args=["a", "b"])
        assert result.get(timeout=60) == ["a", "b"]
    assert f"[{result.id}] received" in worker.log()


def test_a_task_sent_by_the_runtime_queue_reaches_the_worker(
    worker: WorkerProcess, worker_env: dict[str, str]
) -> None:
    runtime = runtime_for(worker_env)
    try:
        runtime.tasks.enqueue(KEYS_ROTATE)
    finally:
        runtime.close()
    with client_for(worker_env) as client:
        wait_until(lambda: _states(client, worker) == {"SUCCESS"}, what="keys.rotate to succeed")


def test_a_task_whose_pool_process_is_killed_is_delivered_again_and_completes(
    worker: WorkerProcess, worker_env: dict[str, str]
) -> None:
    database = settings_for(worker_env).database_url.removeprefix("sqlite:///")
    with client_for(worker_env) as client:
        # The task's first write waits for the database, which this test holds: the task is
        # certainly mid-run when its process is killed.
        with _write_lock(database):
            result = client.send_task(KEYS_ROTATE)
            wait_until(lambda: result.state == "STARTED", what="the task to start")
            (pool_pid,) = worker.pool_pids()
            os.kill(pool_pid, signal.SIGKILL)
            wait_until(lambda: "WorkerLostError" in worker.log(), what="the worker to notice")
        result.get(timeout=60)  # raises if the task failed (WorkerLostError without requeue)
        assert result.successful()
    assert pool_pid not in worker.pool_pids()
    assert worker.log().count(f"[{result.id}] received") == 2


def _states(client: Celery, worker: WorkerProcess) -> set[str]:
    """The states of the keys.rotate tasks this worker received, from the result backend."""
    received = re.findall(rf"Task {re.escape(KEYS_ROTATE)}\[([0-9a-f-]+)\] received", worker.log())
    return {AsyncResult(task_id, app=client).state for task_id in received}


@contextmanager
def _write_lock(database: str) -> Iterator[None]:
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_medvault_up_serves_the_api_and_stops_worker_and_beat_with_it(tmp_path: Path) -> None:
    port = free_port()
    env = {**embedded_env(tmp_path), "MEDVAULT_PORT": str(port)}
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [str(MEDVAULT), "up"],
            env=child_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: _healthy(port) or up.poll() is not None, what="the API")
        wait_until(
            lambda: " ready." in log_path.read_text() and "beat: Starting" in log_path.read_text(),
            what="worker and beat",
        )
        children = _children(up.pid)
        assert len(children) == 2, log_path.read_text()
        descendants = [pid for child in children for pid in process_group_pids(child)]
        assert len(descendants) >= 3  # worker, its pool process, beat
        up.send_signal(signal.SIGINT)  # Ctrl-C
        assert up.wait(timeout=60) == 0, log_path.read_text()
        for pid in descendants:
            assert not _alive(pid), f"process {pid} survived `medvault up`"
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
