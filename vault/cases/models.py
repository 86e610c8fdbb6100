"""The case table and its structured outcome.

A case's documents are encrypted under data keys wrapped by its case key. The outcome
(diagnoses, result, dates, final invoice) is health data: it is stored only sealed under the
same case key, so shredding the case erases it too.
"""

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, JsonValue, StringConstraints, model_validator
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from vault.json_types import JsonDate

# ICD-10 (WHO and ICD-10-GM): letter (never U, reserved), two digits (the second may be A/B in
# a few national extensions), then optionally a dot and up to four subdivision characters.
ICD10_PATTERN = r"^[A-TV-Z][0-9][0-9AB](\.[0-9A-TV-Z]{1,4})?$"
MAX_DIAGNOSES = 20

Icd10Code = Annotated[str, StringConstraints(pattern=ICD10_PATTERN)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# What pydantic accepts for a Decimal of 14 digits, 2 after the point, said precisely (its own
# schema admits any string): a JSON number in cents or such a number as text.
INVOICE_TOTAL_SCHEMA: dict[str, JsonValue] = {
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 999_999_999_999.99, "multipleOf": 0.01},
        {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,2})?$"},
    ]
}


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    # A shred has begun (committed intent): already unreadable, finished by the next run.
    SHREDDING = "shredding"
    SHREDDED = "shredded"


class LegalHoldReason(enum.StrEnum):
    """Why a case is kept past its retention period: a fixed list of codes, never free text."""

    LITIGATION = "litigation"
    MALPRACTICE_CLAIM = "malpractice-claim"
    INSURANCE_DISPUTE = "insurance-dispute"
    AUTHORITY_REQUEST = "authority-request"
    CRIMINAL_INVESTIGATION = "criminal-investigation"


class TreatmentResult(enum.StrEnum):
    """The fixed list of treatment results (no free text)."""

    CURED = "cured"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    WORSENED = "worsened"
    DECEASED = "deceased"
    DISCONTINUED = "discontinued"


class CaseOutcome(BaseModel):
    """The structured outcome a coordinator records; sealed as JSON under the case key."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "diagnosis_codes": ["M17.1", "I10"],
                    "result": "improved",
                    "treatment_start": "2026-09-01",
                    "treatment_end": "2026-10-15",
                    "final_invoice_total": "12480.50",
                    "currency": "EUR",
                }
            ]
        },
    )

    diagnosis_codes: list[Icd10Code] = PydanticField(min_length=1, max_length=MAX_DIAGNOSES)
    result: TreatmentResult
    treatment_start: JsonDate
    treatment_end: JsonDate
    final_invoice_total: Decimal = PydanticField(
        ge=0, max_digits=14, decimal_places=2, json_schema_extra=INVOICE_TOTAL_SCHEMA
    )
    currency: CurrencyCode

    @model_validator(mode="after")
    def _end_not_before_start(self) -> Self:
        if self.treatment_end < self.treatment_start:
            raise ValueError("treatment_end must not be before treatment_start")
        return self


class Case(SQLModel, table=True):
    __tablename__ = "cases"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True)
    key_id: uuid.UUID = Field(index=True)  # the case key in keys' store
    status: CaseStatus = Field(default=CaseStatus.OPEN, index=True)
    created_at: datetime = Field(index=True)
    treatment_completed_at: datetime | None = Field(default=None, index=True)
    shredded_at: datetime | None = None
    # A legal hold stops shredding while it lasts (placed and lifted by the privacy officer).
    legal_hold_at: datetime | None = None
    legal_hold_reason: LegalHoldReason | None = None
    outcome_sealed: bytes | None = None  # CaseOutcome JSON sealed under the case key
    outcome_recorded_at: datetime | None = None
