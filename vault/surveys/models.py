"""Survey answers, QA consent and objections. Scores are numbers from a fixed scale; the only
free text (a comment) is sealed under the case key and never leaves the vault in an extract."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class Survey(SQLModel, table=True):
    """One patient's answers for one completed case, with their QA consent."""

    __tablename__ = "surveys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", unique=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True)
    version: str = Field(max_length=16)  # of the questionnaire answered
    scores: dict[str, int] = Field(sa_type=sa.JSON)  # question id -> 1..5; unanswered left out
    free_text_sealed: bytes | None = None  # sealed under the case key; never exported
    answered_at: datetime
    # Consent to quality-assurance use, given with the answers; withdrawable.
    qa_consent: bool = False
    qa_consent_withdrawn_at: datetime | None = None


class QaObjection(SQLModel, table=True):
    """A patient's objection (GDPR Art. 21) to the use of their data for quality assurance."""

    __tablename__ = "qa_objections"

    patient_id: uuid.UUID = Field(foreign_key="patients.id", primary_key=True)
    objected_at: datetime
