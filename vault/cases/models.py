"""The case table. A case's documents are encrypted under data keys wrapped by its case key."""

import enum
import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    SHREDDED = "shredded"


class Case(SQLModel, table=True):
    __tablename__ = "cases"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True)
    key_id: uuid.UUID = Field(index=True)  # the case key in keys' store
    status: CaseStatus = Field(default=CaseStatus.OPEN)
    created_at: datetime
    treatment_completed_at: datetime | None = None
    shredded_at: datetime | None = None
