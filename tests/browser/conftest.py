"""The browser tests: the product as `make run` starts it (`medvault up`: the web server, a Celery
worker and beat on the embedded defaults) driven by Debian's Chromium through Playwright.

Staff accounts are made with the CLI, as an operator would; everything else happens in pages.
Screenshots go to ``var/screenshots/`` (or ``MEDVAULT_SCREENSHOTS``), kept as artifacts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.conftest import REPO_ROOT, free_port
from tests.e2e.service import medvault, medvault_running

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
STAFF_PASSWORD = "browser story password"
# As the machine notes say: without these, Chromium reaches for Google's hosts at every start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("MEDVAULT_SCREENSHOTS", REPO_ROOT / "var" / "screenshots"))


@dataclass
class Product:
    """A running `medvault up` on its own data folder and port."""

    base_url: str
    data_dir: Path
    env: dict[str, str]
    staff: dict[str, str] = field(default_factory=dict)  # role -> login

    def mails_to(self, address: str) -> list[str]:
        """The bodies of the outbox mails to ``address``, oldest first."""
        bodies = []
        for path in sorted(
            (self.data_dir / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns
        ):
            mail = message_from_bytes(path.read_bytes(), policy=policy.default)
            if mail["To"] == address:
                body = mail.get_body(preferencelist=("plain",))
                bodies.append(body.get_content() if body is not None else "")
        return bodies

    def code_in_last_mail(self, address: str, pattern: str = r"code[^:\n]*:\s*(\S+)") -> str:
        mails = self.mails_to(address)
        assert mails, f"no mail to {address}"
        match = re.search(pattern, mails[-1], flags=re.IGNORECASE)
        assert match, "the mail carries no code"
        return match.group(1)


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "medvault up exited while starting"
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("medvault up did not become ready")


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    root = tmp_path_factory.mktemp("product")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MEDVAULT_")}
    env = clean | {
        "MEDVAULT_DATA_DIR": str(root / "var"),
        "MEDVAULT_PORT": str(port),
        "MEDVAULT_PUBLIC_BASE_URL": base_url,
    }
    medvault("db", "upgrade", env=env)
    running = Product(base_url, root / "var", env)
    for role in ("coordinator", "analyst", "admin"):
        login = f"{role}-story"
        medvault("user", "add", login, "--role", role, env=env, stdin=STAFF_PASSWORD + "\n")
        running.staff[role] = login
    with medvault_running(
        "up", env=env, log_path=root / "up.log", port=port, stop_signal=signal.SIGINT, cwd=root
    ) as process:
        _wait_ready(base_url, process)
        yield running


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: `make test` installs it"
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@dataclass
class Camera:
    """Saves a screenshot of a page under a readable, ordered name."""

    folder: Path
    taken: int = 0

    def shoot(self, page: Page, name: str) -> Path:
        self.taken += 1
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.taken:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def camera(request: pytest.FixtureRequest) -> Camera:
    return Camera(SCREENSHOTS / request.node.name)
