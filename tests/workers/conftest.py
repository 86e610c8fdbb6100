"""Real worker processes: ``medvault worker`` as a subprocess on a temporary installation, over
the embedded broker and over Redis.

``MEDVAULT_TEST_REDIS_URL`` set (CI) means Redis must be there: its tests fail, never skip, when
it does not answer. Each installation has a queue of its own, so tests sharing one Redis (or
left-over messages of an earlier run) never reach each other's workers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

import infra.models  # noqa: F401 - registers every table on SQLModel.metadata
from infra.settings import ENV_PREFIX, Settings
from infra.wiring import Runtime, build_runtime
from tests.databases import sqlite_with_tables

MEDVAULT = Path(sys.executable).with_name("medvault")
BROKERS = ("embedded", "redis")
STOP_SECONDS = 30.0


def wait_until(predicate: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or predicate}")
        time.sleep(0.05)


def settings_for(env: dict[str, str]) -> Settings:
    fields = {
        name.removeprefix(ENV_PREFIX).lower(): value
        for name, value in env.items()
        if name.startswith(ENV_PREFIX)
    }
    return Settings(**fields)  # type: ignore[arg-type]


def runtime_for(env: dict[str, str]) -> Runtime:
    """The test's own runtime on the same installation as the worker of ``env``."""
    return build_runtime(settings_for(env))


def embedded_env(tmp_path: Path) -> dict[str, str]:
    """MEDVAULT_* variables of a fresh installation under ``tmp_path`` with its schema created."""
    data = tmp_path / "var"
    env = {
        "MEDVAULT_DATA_DIR": str(data),
        "MEDVAULT_DATABASE_URL": f"sqlite:///{data / 'medvault.db'}",
        "MEDVAULT_BLOB_STORE": "local",
        "MEDVAULT_KEY_PROVIDER": "local",
        "MEDVAULT_TASK_QUEUE": f"medvault-test-{uuid.uuid4().hex}",
        "MEDVAULT_WORKER_CONCURRENCY": "1",
    }
    sqlite_with_tables(data / "medvault.db")
    return env


def require_redis_url() -> str:
    """``MEDVAULT_TEST_REDIS_URL``, checked to answer (fail if not); skip when it is unset."""
    url = os.environ.get("MEDVAULT_TEST_REDIS_URL")
    if not url:
        pytest.skip("MEDVAULT_TEST_REDIS_URL is not set")
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError:
        pytest.fail(f"MEDVAULT_TEST_REDIS_URL={url} is set but Redis does not answer there")
    finally:
        client.close()
    return url


@pytest.fixture(params=BROKERS)
def worker_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = embedded_env(tmp_path)
    if request.param == "redis":
        env["MEDVAULT_BROKER_URL"] = require_redis_url()
    return env


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This process's environment without its MEDVAULT_* variables, plus ``env``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return {**inherited, **env}


def process_group_pids(pgid: int) -> list[int]:
    """Live processes of a process group (zombies excluded), read from /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name (field 2) is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            pids.append(int(entry.name))
    return pids


class WorkerProcess:
    """``medvault worker`` in a process group of its own, its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(MEDVAULT), "worker"],
                env=child_env(self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(
            lambda: " ready." in self.log()[offset:] or self._process.poll() is not None,  # type: ignore[union-attr]
            what="the worker to be ready",
        )
        assert self._process.poll() is None, self.log()

    def pool_pids(self) -> list[int]:
        """The worker's pool processes (its process group less its main process)."""
        return [pid for pid in process_group_pids(self.pid) if pid != self.pid]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once (a crash, a power cut)."""
        if self._process is not None:
            _kill_group(self._process)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL whatever is left."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=STOP_SECONDS)
        _kill_group(self._process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(worker_env, tmp_path / "worker.log")
    try:
        yield process
    finally:
        process.stop()
