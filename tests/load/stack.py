"""The service under load as `make run` starts it: `medvault up` (the API, with a Celery worker and
beat as its children) on a fresh embedded installation (SQLite, local folder, local keyring) in a
temporary folder, and what the operating system says about its processes' memory."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.service import medvault, medvault_running
from tests.soak.server import process_children, soak_env
from tests.workers.conftest import process_group_pids, wait_until

START_SECONDS = 90.0
STOP_SECONDS = 60.0  # `up` gives its worker 30 s to finish, then stops beat


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS), in KiB; 0 once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0  # a zombie has no VmRSS line


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")


@dataclass
class Stack:
    """`medvault up` and the pids of its Celery worker and beat (each a process group)."""

    process: subprocess.Popen[bytes]
    env: dict[str, str]
    base_url: str
    log_path: Path
    worker_pid: int
    beat_pid: int

    @property
    def api_pid(self) -> int:
        return self.process.pid  # `up` runs uvicorn in its own process (one web worker)

    @property
    def data_dir(self) -> Path:
        return Path(self.env["MEDVAULT_DATA_DIR"])

    def alive(self) -> dict[str, bool]:
        return {
            "api": self.process.poll() is None,
            "worker": rss_kib(self.worker_pid) > 0,
            "beat": rss_kib(self.beat_pid) > 0,
        }

    def worker_rss_kib(self) -> int:
        """The worker's main process and its pool processes together."""
        return sum(rss_kib(pid) for pid in process_group_pids(self.worker_pid))

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if needle in line]


def _celery_child(pid: int, command: str) -> int | None:
    for child in process_children(pid):
        arguments = command_line(int(child))
        if "celery" in " ".join(arguments) and command in arguments:
            return int(child)
    return None


@contextmanager
def running_stack(folder: Path, **settings: str) -> Iterator[Stack]:
    """`medvault up` on a fresh migrated installation, once its API, worker and beat are up;
    stopped as Ctrl-C would stop it (SIGINT), and waited for, on exit."""
    env = soak_env(folder, **settings)
    medvault("db", "upgrade", env=env)
    log_path, port = folder / "up.log", int(env["MEDVAULT_PORT"])
    groups: list[int] = []
    with ExitStack() as stack:
        # Whatever `up` did not stop in time (it started these groups for us): end them by id.
        stack.callback(_kill_groups, groups)
        process = stack.enter_context(
            medvault_running(
                "up",
                env=env,
                log_path=log_path,
                port=port,
                start_seconds=START_SECONDS,
                stop_signal=signal.SIGINT,  # as Ctrl-C stops it
                stop_seconds=STOP_SECONDS,
                new_session=True,
            )
        )
        groups.append(process.pid)
        wait_until(
            lambda: " ready." in log_path.read_text() and "beat: Starting" in log_path.read_text(),
            timeout=START_SECONDS,
            what="the worker and beat of medvault up",
        )
        worker_pid = _celery_child(process.pid, "worker")
        beat_pid = _celery_child(process.pid, "beat")
        assert worker_pid, log_path.read_text()
        assert beat_pid, log_path.read_text()
        groups.extend([worker_pid, beat_pid])
        yield Stack(process, env, f"http://127.0.0.1:{port}", log_path, worker_pid, beat_pid)


def _kill_groups(groups: list[int]) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


@dataclass
class MemorySampler:
    """Samples the resident memory of the API and the worker every ``interval`` seconds in a
    thread of the test process, while the load runs."""

    stack: Stack
    interval: float = 2.0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # seconds, api, worker
    _started: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while True:
            at = time.monotonic() - self._started
            api, worker = rss_kib(self.stack.api_pid), self.stack.worker_rss_kib()
            self.samples.append((round(at, 1), api, worker))
            if self._stop.wait(self.interval):
                return
