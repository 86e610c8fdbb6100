"""Time helpers. Whatever depends on time takes ``now`` as an argument; this is the default."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
