"""The patient table. Names, contact data and quasi-identifiers (birth date, sex, country) are
stored only sealed under the patient key, so destroying that one key erases them everywhere,
backups included."""

import enum
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import StringConstraints
from sqlmodel import Field, SQLModel

# ISO 3166-1 alpha-2, upper case (the shape; the code list itself is not enforced).
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Sex(enum.StrEnum):
    """Sex as the patient states it; a quasi-identifier of QA extracts."""

    FEMALE = "female"
    MALE = "male"
    DIVERSE = "diverse"
    UNKNOWN = "unknown"


class Patient(SQLModel, table=True):
    __tablename__ = "patients"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    key_id: uuid.UUID = Field(index=True)  # the patient key in keys' store
    name_sealed: bytes
    birth_date_sealed: bytes
    email_sealed: bytes
    phone_sealed: bytes | None = None
    # NULL on rows registered before these fields existed: read as unknown / no country.
    sex_sealed: bytes | None = None
    country_sealed: bytes | None = None  # ISO 3166-1 alpha-2
    created_at: datetime
    erased_at: datetime | None = None
