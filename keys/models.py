"""The key store's tables: the root keys we use, and every case, patient and scope key, wrapped.

A key record whose ``wrapped`` is NULL and ``destroyed_at`` is set is a tombstone: it records
when and why the key was destroyed, and its primary key makes recreating a key under that id
impossible. Nothing here ever holds key material in clear.
"""

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# KMS key ARNs are at most 2048 characters.
ROOT_KEY_ID_LENGTH = 2048
REASON_LENGTH = 32


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


class RootKeyPurpose(enum.StrEnum):
    ACTIVE = "active"  # wraps the keys of live cases and patients; rotated
    EPOCH = "epoch"  # wraps the keys of cases expiring in one month; destroyed with that month


class RootKeyState(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"  # replaced by rotation; destroyed once the backup window has passed
    DESTROYED = "destroyed"


class KeyKind(enum.StrEnum):
    CASE = "case"
    PATIENT = "patient"
    SCOPE = "scope"
    EXPORT = "export"  # a data-subject export (Art. 15/20); destroyed when the export expires


class RootKeyRecord(SQLModel, table=True):
    """A root key held by the provider (KMS or local keyring), identified by the provider's id."""

    __tablename__ = "root_keys"
    __table_args__ = (
        # At most one live key of purpose ``active``: concurrent first uses cannot make two.
        # SQLAlchemy stores enum members by name, hence 'ACTIVE' (the tests prove it holds).
        sa.Index(
            "uq_root_keys_one_active",
            "purpose",
            unique=True,
            sqlite_where=sa.text("purpose = 'ACTIVE' AND state = 'ACTIVE'"),
            postgresql_where=sa.text("purpose = 'ACTIVE' AND state = 'ACTIVE'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=ROOT_KEY_ID_LENGTH)
    purpose: RootKeyPurpose
    epoch: str | None = Field(default=None, unique=True, max_length=7)  # "YYYY-MM"
    state: RootKeyState = Field(default=RootKeyState.ACTIVE)
    created_at: datetime = Field(sa_type=_timestamp())
    # NULL on a retired key while a rotation is still moving keys off it.
    retired_at: datetime | None = Field(default=None, sa_type=_timestamp())
    destroyed_at: datetime | None = Field(default=None, sa_type=_timestamp())


class KeyRecord(SQLModel, table=True):
    """A case, patient or scope key, stored only wrapped under a root key."""

    __tablename__ = "key_records"

    id: uuid.UUID = Field(primary_key=True)
    kind: KeyKind
    root_key_id: str | None = Field(
        default=None, foreign_key="root_keys.id", index=True, max_length=ROOT_KEY_ID_LENGTH
    )
    wrapped: bytes | None = None  # NULL once destroyed
    created_at: datetime = Field(sa_type=_timestamp())
    # Indexed for KeyStore.rotation_due, which looks for keys destroyed since the last rotation.
    destroyed_at: datetime | None = Field(default=None, sa_type=_timestamp(), index=True)
    # A short code ("retention", "erasure", "test"), never free text.
    destroy_reason: str | None = Field(default=None, max_length=REASON_LENGTH)
    rewrapped_at: datetime | None = Field(default=None, sa_type=_timestamp())
