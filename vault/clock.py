"""Time helpers. Whatever depends on time takes ``now`` as an argument; this is the default."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; SQLite hands back naive ones, which medvault always wrote as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
