"""A notification and the ``Notifier`` protocol; implementations live in ``infra.notify``.

Notifications carry links, codes and confirmations, never document content.
"""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, repr=False)
class Notification:
    """One message to one address. Its repr is redacted: address and body are personal data."""

    to: str
    subject: str
    body: str

    def __repr__(self) -> str:
        return "Notification(<redacted>)"


class Notifier(Protocol):
    def send(self, message: Notification) -> None:
        """Hand the message on for delivery; raise NotificationFailed if that fails."""
        ...
