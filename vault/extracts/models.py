"""Extract tables: named pseudonym scopes, and extracts with their state, report and objects.

No row here holds personal data: an extract's objects are encrypted under its own key (kind
``scope`` in ``keys``), which is destroyed when the extract expires (crypto-shredding).
"""

import enum
import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


class ExtractField(enum.StrEnum):
    """The fields an analyst may ask for (the pseudonym is always included)."""

    AGE_BAND = "age_band"
    SEX = "sex"
    COUNTRY = "country"
    DIAGNOSES = "diagnoses"
    TREATMENT_RESULT = "treatment_result"
    TREATMENT_START_MONTH = "treatment_start_month"
    TREATMENT_DAYS = "treatment_days"
    PARTNER_CATEGORY = "partner_category"
    INVOICE_TOTAL = "invoice_total"
    SURVEY_SCORES = "survey_scores"


class ExtractStatus(enum.StrEnum):
    REQUESTED = "requested"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    SHREDDED = "shredded"


class ExtractFormat(enum.StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


class ExtractScope(SQLModel, table=True):
    """A named, reusable pseudonym scope: extracts in it share pseudonyms (an admin makes one)."""

    __tablename__ = "extract_scopes"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(unique=True, max_length=64)  # a label like "qa-2027", not free text
    key_id: uuid.UUID  # the HMAC secret of the pseudonyms, in keys' store
    created_by: uuid.UUID | None = None
    created_at: datetime = Field(sa_type=_timestamp())


class Extract(SQLModel, table=True):
    __tablename__ = "extracts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    requested_by: uuid.UUID = Field(index=True)  # the analyst's user id
    scope_id: uuid.UUID | None = Field(default=None, foreign_key="extract_scopes.id")
    scope_key_id: uuid.UUID  # pseudonym secret: the named scope's, or one just for this extract
    key_id: uuid.UUID  # wraps the data keys of the objects; destroyed at expiry
    period_from: date  # treatment completion dates, both inclusive
    period_to: date
    fields: list[str] = Field(sa_type=sa.JSON)
    icd_chapter_only: bool = False
    k: int
    status: ExtractStatus = Field(default=ExtractStatus.REQUESTED, index=True)
    # The build that owns the row (a re-delivered task takes over with a new one); it also
    # names the objects, so a build that lost never overwrites the winner's.
    build_id: uuid.UUID | None = None
    attempts: int = 0
    report: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    parquet_key: str | None = None
    parquet_wrapped_dek: bytes | None = None
    csv_key: str | None = None
    csv_wrapped_dek: bytes | None = None
    created_at: datetime = Field(sa_type=_timestamp())
    started_at: datetime | None = Field(default=None, sa_type=_timestamp())
    finished_at: datetime | None = Field(default=None, sa_type=_timestamp())
    # Set when the build ends (ready or failed); the sweep shreds the extract after it.
    expires_at: datetime | None = Field(default=None, index=True, sa_type=_timestamp())
    shredded_at: datetime | None = Field(default=None, sa_type=_timestamp())
