"""The canonical encoding of an audit event and its hash.

An event's hash is the hex SHA-256 of a JSON object holding every field but ``hash`` itself
(``prev_hash`` included, which links it to the event before): keys sorted, no whitespace,
ASCII only, ids as lowercase hyphenated UUIDs, ``at`` as ISO-8601 UTC with microseconds,
absent values as ``null``. SQLite hands back naive datetimes (always written as UTC) and
PostgreSQL aware ones; both encode to the same bytes, so verify recomputes identical hashes.
"""

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vault.clock import as_utc

# Every hashed field. Changing this list (or the encoding) invalidates every stored chain.
HASHED_FIELDS = (
    "seq",
    "at",
    "action",
    "actor_kind",
    "actor_id",
    "client",
    "patient_id",
    "case_id",
    "document_id",
    "transfer_id",
    "link_id",
    "partner_id",
    "user_id",
    "legal_basis",
    "purpose",
    "outcome",
    "prev_hash",
)


def canonical_time(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds, the one time format inside hashed and signed bytes."""
    return as_utc(moment).isoformat(timespec="microseconds")


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return canonical_time(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        return str(value)  # a StrEnum member becomes its plain value
    return value


def canonical_json(values: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted, ASCII JSON of ``values`` (shared by events and checkpoints)."""
    normalised = {name: _canonical_value(value) for name, value in values.items()}
    return json.dumps(
        normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's hash covers: every field of HASHED_FIELDS, nothing else."""
    return canonical_json({name: event[name] for name in HASHED_FIELDS})


def event_hash(event: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the event's canonical bytes."""
    return hashlib.sha256(canonical_bytes(event)).hexdigest()
