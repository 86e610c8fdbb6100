"""A real `medvault serve` for the soak suites: the embedded installation (SQLite, local folder,
local keyring) in a temporary folder, one signed-in patient with a case, a process that polls the
health endpoints the whole time, and what the operating system says about the process."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx

from tests.conftest import REPO_ROOT, free_port
from tests.e2e.service import PASSWORD, mailed_code, medvault, medvault_running, sign_in
from tests.soak.probe import TIMEOUT_SECONDS

PROBE_TIMEOUT_SECONDS = TIMEOUT_SECONDS
TOKEN_REFRESH_SECONDS = 5 * 60  # access tokens last 15 minutes


def soak_env(folder: Path, **settings: str) -> dict[str, str]:
    """MEDVAULT_* variables of a fresh embedded installation under ``folder``."""
    data = folder / "var"
    port = free_port()
    env = {
        "MEDVAULT_DATA_DIR": str(data),
        "MEDVAULT_DATABASE_URL": f"sqlite:///{data / 'medvault.db'}",
        "MEDVAULT_BLOB_STORE": "local",
        "MEDVAULT_KEY_PROVIDER": "local",
        "MEDVAULT_TASK_QUEUE": f"medvault-soak-{uuid.uuid4().hex}",
        "MEDVAULT_PORT": str(port),
        "MEDVAULT_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    env.update({f"MEDVAULT_{name.upper()}": value for name, value in settings.items()})
    return env


@dataclass
class HealthProbe:
    """Runs :mod:`tests.soak.probe` beside the test; after ``stop`` holds every check."""

    base_url: str
    out_path: Path
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    checks: list[tuple[float, float, str]] = field(default_factory=list)  # start, seconds, path
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.soak.probe", self.base_url, str(self.out_path)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        self._process.wait(timeout=PROBE_TIMEOUT_SECONDS + 10)
        assert self._process.returncode == 0, f"the probe ended with {self._process.returncode}"
        for line in self.out_path.read_text().splitlines():
            started, seconds, path, outcome = line.split()
            self.checks.append((float(started), float(seconds), path))
            self.latencies.setdefault(path, []).append(float(seconds))
            if outcome != "200":
                self.failures.append(f"{path}: {outcome}")

    def slowest(self, count: int) -> list[tuple[float, float, str]]:
        return sorted(self.checks, key=lambda check: check[1], reverse=True)[:count]

    @property
    def all_latencies(self) -> list[float]:
        return [latency for values in self.latencies.values() for latency in values]


class Patient:
    """A self-registered, confirmed patient with one case; re-signs in before tokens expire."""

    def __init__(self, client: httpx.Client, env: dict[str, str]) -> None:
        self.client = client
        self.login = f"soak-{uuid.uuid4().hex[:8]}@example.org"
        registered = client.post(
            "/auth/register",
            json={
                "email": self.login,
                "password": PASSWORD,
                "name": "Soak Patient",
                "birth_date": "1970-01-01",
            },
        )
        assert registered.status_code == 202, registered.text
        confirmed = client.post("/auth/confirm", json={"token": mailed_code(env, self.login)})
        assert confirmed.status_code == 204, confirmed.text
        self._headers = sign_in(client, self.login)
        self._signed_in_at = time.monotonic()
        self._lock = threading.Lock()
        case = client.post("/cases", headers=self._headers)
        assert case.status_code == 201, case.text
        self.case_id: str = case.json()["id"]

    @property
    def headers(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._signed_in_at > TOKEN_REFRESH_SECONDS:
                self._headers = sign_in(self.client, self.login)
                self._signed_in_at = time.monotonic()
            return dict(self._headers)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    base_url: str
    log_path: Path

    @property
    def data_dir(self) -> Path:
        return Path(self.env["MEDVAULT_DATA_DIR"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def children(self) -> list[str]:
        """Live child processes of the server (zombies too: an unreaped child is a leak)."""
        return process_children(self.process.pid)

    def open_spool_files(self) -> list[str]:
        """What the server process still has open inside its spool folder."""
        spool = str(self.data_dir / "spool")
        found = []
        fd_dir = Path(f"/proc/{self.process.pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed while we looked
            if target.startswith(spool):
                found.append(target)
        return found

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.log_path.read_text().splitlines() if needle in line]


def process_children(pid: int) -> list[str]:
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.extend((task / "children").read_text().split())
        except OSError:
            continue  # the thread ended while we looked
    return children


@contextmanager
def running_server(folder: Path, **settings: str) -> Iterator[Server]:
    """`medvault serve` on a fresh migrated installation; stopped (and waited for) on exit."""
    env = soak_env(folder, **settings)
    medvault("db", "upgrade", env=env)
    log_path, port = folder / "server.log", int(env["MEDVAULT_PORT"])
    with medvault_running("serve", env=env, log_path=log_path, port=port) as process:
        yield Server(process, env, f"http://127.0.0.1:{port}", log_path)
