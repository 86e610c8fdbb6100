"""The partner table: recipients of transfers. Partners have no password; they reach what was
sent to them only through a link and its access code."""

import enum
import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class PartnerKind(enum.StrEnum):
    CLINIC = "clinic"
    PHYSICIAN = "physician"
    INSURER = "insurer"
    REHABILITATION = "rehabilitation"
    NURSING = "nursing"


class Partner(SQLModel, table=True):
    __tablename__ = "partners"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    kind: PartnerKind
    name: str = Field(max_length=200)
    contact_email: str = Field(max_length=320)  # where links are sent; normalised on the way in
    created_at: datetime
    disabled_at: datetime | None = None
