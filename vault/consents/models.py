"""Consent and restriction tables. Both are ids and times only: no free text."""

import enum
import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class Consent(SQLModel, table=True):
    """A patient's consent, for one case, to one version of a consent text."""

    __tablename__ = "consents"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    text_version: str
    text_sha256: str  # of the exact text agreed to, hex
    given_at: datetime
    withdrawn_at: datetime | None = None


class RestrictionReason(enum.StrEnum):
    """Who or what placed a restriction (lifting is always the privacy officer's)."""

    PRIVACY_OFFICER = "privacy-officer"  # placed by the privacy officer
    PATIENT_REQUEST = "patient-request"  # the patient asked for it (Art. 18(1))
    ERASURE_RETAINED = "erasure-retained"  # the part of an erasure kept by a legal duty or hold


class Restriction(SQLModel, table=True):
    """A restriction of processing (GDPR Art. 18): while live it blocks every new transfer of the
    patient's data, or of one case's data when ``case_id`` is set."""

    __tablename__ = "restrictions"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True)
    case_id: uuid.UUID | None = Field(default=None, foreign_key="cases.id", index=True)
    placed_at: datetime
    lifted_at: datetime | None = None
    reason: RestrictionReason = RestrictionReason.PRIVACY_OFFICER
