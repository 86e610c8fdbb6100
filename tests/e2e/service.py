"""The service as its operators and users meet it from outside: the `medvault` command (run
once, or kept running as a server), the confirmation mail in the outbox, signing in over HTTP.
Shared by the tests that start real installations (e2e, browser, soak, faults, load)."""

from __future__ import annotations

import email
import email.policy
import re
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx

from tests.conftest import wait_for_port
from tests.workers.conftest import MEDVAULT, child_env

PASSWORD = "e2e password long enough"


def medvault(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run a `medvault` command with the installation's MEDVAULT_* variables; it must succeed."""
    result = subprocess.run(
        [str(MEDVAULT), *args],
        env=child_env(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


@contextmanager
def medvault_running(
    *args: str,
    env: dict[str, str],
    log_path: Path,
    port: int,
    start_seconds: float = 60,
    stop_signal: signal.Signals = signal.SIGTERM,
    stop_seconds: float = 30,
    cwd: Path | None = None,
    new_session: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """A `medvault` command that keeps running (`serve`, `up`) with the installation's
    variables and its output in ``log_path``, yielded once something answers on ``port``. On
    exit it is sent ``stop_signal``, killed if it has not ended within ``stop_seconds``, and
    waited for."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(MEDVAULT), *args],
            env=child_env(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    try:
        started = wait_for_port("127.0.0.1", port, timeout=start_seconds)
        assert started, f"medvault {args[0]} did not start:\n{log_path.read_text()[-2000:]}"
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(stop_signal)
            try:
                process.wait(timeout=stop_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def mailed_code(env: dict[str, str], to: str) -> str:
    """The one-time code of the confirmation mail (no SMTP server set: it is in the outbox)."""
    outbox = Path(env["MEDVAULT_DATA_DIR"]) / "outbox"
    for path in outbox.iterdir():
        mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if mail["To"] == to:
            body = mail.get_body(preferencelist=("plain",))
            assert body is not None
            return re.findall(r"^([A-Za-z0-9_-]{20,})$", body.get_content(), re.MULTILINE)[0]
    raise AssertionError("no confirmation mail in the outbox")


def sign_in(client: httpx.Client, login: str) -> dict[str, str]:
    """The Authorization header of a fresh access token of ``login`` (password ``PASSWORD``)."""
    response = client.post("/auth/token", data={"username": login, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
