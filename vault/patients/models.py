"""The patient table. Names and contact data are stored only sealed under the patient key,
so destroying that one key erases them everywhere, backups included."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class Patient(SQLModel, table=True):
    __tablename__ = "patients"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    key_id: uuid.UUID = Field(index=True)  # the patient key in keys' store
    name_sealed: bytes
    birth_date_sealed: bytes
    email_sealed: bytes
    phone_sealed: bytes | None = None
    created_at: datetime
    erased_at: datetime | None = None
