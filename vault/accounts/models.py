"""Account tables. Logins, tokens and one-time codes are stored only as digests, never in clear."""

import enum
import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class Role(enum.StrEnum):
    PATIENT = "patient"
    COORDINATOR = "coordinator"
    ANALYST = "analyst"
    ADMIN = "admin"  # the privacy officer


# Roles an operator or admin creates directly; patients register themselves or are invited,
# so an account of role patient always belongs to a patient record.
STAFF_ROLES = frozenset({Role.COORDINATOR, Role.ANALYST, Role.ADMIN})


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    role: Role
    # Hex HMAC-SHA256 of the normalised login under the login lookup key.
    login_digest: str = Field(unique=True, max_length=64)
    password_hash: str  # argon2id, in the PHC string format
    patient_id: uuid.UUID | None = Field(default=None, foreign_key="patients.id", index=True)
    created_at: datetime
    disabled_at: datetime | None = None
    email_confirmed_at: datetime | None = None


class TokenKind(enum.StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class AuthToken(SQLModel, table=True):
    """A bearer token, known by its SHA-256 digest. A login starts a family; refreshes extend it."""

    __tablename__ = "auth_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    digest: str = Field(unique=True, max_length=64)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    kind: TokenKind
    family_id: uuid.UUID = Field(index=True)
    expires_at: datetime
    revoked_at: datetime | None = None
    created_at: datetime


class LoginThrottle(SQLModel, table=True):
    """Failed logins counted per key: ``account:<login digest>`` or ``client:<anonymised addr>``."""

    __tablename__ = "login_throttles"

    key: str = Field(primary_key=True, max_length=200)
    failures: int = 0
    window_started_at: datetime
    last_failure_at: datetime
    locked_until: datetime | None = None


class OneTimePurpose(enum.StrEnum):
    CONFIRM_EMAIL = "confirm-email"
    ACCEPT_INVITATION = "accept-invitation"


class OneTimeToken(SQLModel, table=True):
    """A single-use token mailed to a user (email confirmation, invitation), stored as digest."""

    __tablename__ = "one_time_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    digest: str = Field(unique=True, max_length=64)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    purpose: OneTimePurpose
    expires_at: datetime
    used_at: datetime | None = None
    created_at: datetime
