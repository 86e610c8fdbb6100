"""The service as its operators and users meet it from outside: the `medvault` command, the
confirmation mail in the outbox, signing in over HTTP. Shared by the end-to-end tests."""

from __future__ import annotations

import email
import email.policy
import re
import subprocess
from pathlib import Path

import httpx2 as httpx

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
