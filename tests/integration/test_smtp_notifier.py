"""The notifiers against real receivers: a local aiosmtpd server, and an outbox folder."""

from __future__ import annotations

import email
import email.policy
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword

from infra.notify import OutboxNotifier, SmtpNotifier, build_notifier
from infra.settings import Settings
from tests.conftest import free_port
from vault.errors import NotificationFailed
from vault.notifications.interfaces import Notification

MESSAGE = Notification(
    to="erika.mustermann@example.org", subject="Your code", body="Code: 1234-5678\n"
)
SENDER = "medvault@vault.example"


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox
    logins: list[tuple[bytes, bytes]]


def authenticate(logins: list[tuple[bytes, bytes]]) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"smtp-secret")

    return check


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox, port = Inbox(), free_port()
    logins: list[tuple[bytes, bytes]] = []
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticate(logins),
        auth_require_tls=False,  # plain text on loopback, in this test only
    )
    controller.start()
    try:
        yield SmtpServer(port=port, inbox=inbox, logins=logins)
    finally:
        controller.stop()


def notifier(port: int, **options: Any) -> SmtpNotifier:
    values: dict[str, Any] = {"host": "127.0.0.1", "port": port, "sender": SENDER}
    values.update({"starttls": False, "timeout": 5.0} | options)
    return SmtpNotifier(**values)


def test_smtp_delivers_the_message(smtp_server: SmtpServer) -> None:
    notifier(smtp_server.port).send(MESSAGE)

    (envelope,) = smtp_server.inbox.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == [MESSAGE.to]
    assert isinstance(envelope.content, bytes)
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert received["Subject"] == MESSAGE.subject
    content = received.get_content()
    assert content.replace("\r\n", "\n") == MESSAGE.body  # SMTP lines end in CRLF
    assert smtp_server.logins == []


def test_smtp_logs_in_when_a_username_is_set(smtp_server: SmtpServer) -> None:
    notifier(smtp_server.port, username="mailer", password="smtp-secret").send(MESSAGE)

    assert smtp_server.logins == [(b"mailer", b"smtp-secret")]
    assert len(smtp_server.inbox.envelopes) == 1


def test_smtp_refused_login_fails_without_naming_the_address(smtp_server: SmtpServer) -> None:
    with pytest.raises(NotificationFailed) as failed:
        notifier(smtp_server.port, username="mailer", password="wrong").send(MESSAGE)

    assert MESSAGE.to not in str(failed.value)
    assert failed.value.__cause__ is None
    assert smtp_server.inbox.envelopes == []


def test_starttls_required_but_not_offered_fails(smtp_server: SmtpServer) -> None:
    with pytest.raises(NotificationFailed):
        notifier(smtp_server.port, starttls=True).send(MESSAGE)
    assert smtp_server.inbox.envelopes == []


def test_unreachable_server_fails() -> None:
    with pytest.raises(NotificationFailed):
        notifier(free_port()).send(MESSAGE)


def test_outbox_writes_one_private_file_per_message(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    outbox = OutboxNotifier(folder, sender=SENDER)

    outbox.send(MESSAGE)
    outbox.send(MESSAGE)

    files = sorted(folder.iterdir())
    assert len(files) == 2
    assert all(path.suffix == ".eml" for path in files)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o600}
    received = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert received["To"] == MESSAGE.to
    assert received.get_content() == MESSAGE.body


def test_outbox_that_cannot_be_written_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    with pytest.raises(NotificationFailed):
        OutboxNotifier(blocker / "outbox", sender=SENDER).send(MESSAGE)


def test_notification_repr_is_redacted() -> None:
    assert MESSAGE.to not in repr(MESSAGE)
    assert "1234" not in repr(MESSAGE)


def test_build_notifier_follows_the_settings(tmp_path: Path, smtp_server: SmtpServer) -> None:
    base = {"data_dir": tmp_path, "database_url": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    assert isinstance(build_notifier(Settings(**base)), OutboxNotifier)  # type: ignore[arg-type]

    smtp = build_notifier(
        Settings(**base, smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_starttls=False)  # type: ignore[arg-type]
    )
    smtp.send(MESSAGE)
    assert len(smtp_server.inbox.envelopes) == 1
