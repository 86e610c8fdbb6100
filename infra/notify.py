"""Notifiers: SMTP when a server is configured, else an outbox folder of ``.eml`` files.

Either way a failure to hand a message on raises ``NotificationFailed`` with a message that
names neither the address nor the content (SMTP errors can quote the recipient, so their
cause is dropped).
"""

from __future__ import annotations

import os
import smtplib
import ssl
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from infra.settings import Settings
from vault.clock import utcnow
from vault.errors import NotificationFailed
from vault.notifications.interfaces import Notification, Notifier

SMTP_TIMEOUT_SECONDS = 30.0
OUTBOX_DIR_MODE = 0o700
OUTBOX_FILE_MODE = 0o600


def as_email(message: Notification, *, sender: str) -> EmailMessage:
    """The notification as a plain-text e-mail from ``sender``."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(utcnow())
    email["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    email.set_content(message.body)
    return email


class SmtpNotifier:
    """Sends each notification over its own SMTP connection (STARTTLS and login optional)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        starttls: bool,
        username: str | None = None,
        password: str | None = None,
        timeout: float = SMTP_TIMEOUT_SECONDS,
    ) -> None:
        self._host, self._port, self._sender = host, port, sender
        self._starttls, self._timeout = starttls, timeout
        self._username, self._password = username, password

    def send(self, message: Notification) -> None:
        email = as_email(message, sender=self._sender)
        try:
            with smtplib.SMTP(self._host, self._port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username is not None:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(email)
        except (smtplib.SMTPException, OSError):
            raise NotificationFailed("the mail server did not accept the notification") from None

    def __repr__(self) -> str:
        return f"SmtpNotifier({self._host}:{self._port})"


class OutboxNotifier:
    """Writes each notification as one ``.eml`` file (0600) into a private folder (0700).

    Files appear whole or not at all: each is written under a hidden temporary name in the
    same folder, synced, then renamed.
    """

    def __init__(self, folder: Path, *, sender: str) -> None:
        self._folder, self._sender = folder, sender

    def send(self, message: Notification) -> None:
        data = as_email(message, sender=self._sender).as_bytes()
        name = f"{utcnow():%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex}.eml"
        temporary = self._folder / f".{name}.tmp"
        try:
            self._folder.mkdir(mode=OUTBOX_DIR_MODE, parents=True, exist_ok=True)
            self._folder.chmod(OUTBOX_DIR_MODE)  # mkdir's mode is filtered by the umask
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OUTBOX_FILE_MODE)
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, self._folder / name)
            finally:
                temporary.unlink(missing_ok=True)
        except OSError:
            raise NotificationFailed("the notification could not be written") from None

    def __repr__(self) -> str:
        return "OutboxNotifier()"


def build_notifier(settings: Settings) -> Notifier:
    """SMTP when ``smtp_host`` is set, else the outbox folder."""
    if settings.smtp_host:
        return SmtpNotifier(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=(
                settings.smtp_password.get_secret_value() if settings.smtp_password else None
            ),
        )
    return OutboxNotifier(settings.outbox_dir, sender=settings.smtp_sender)
