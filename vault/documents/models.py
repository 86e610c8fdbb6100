"""The document table: one row per stored object, written only after the object exists."""

import enum
import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class DocumentKind(enum.StrEnum):
    RECORD = "record"
    INVOICE = "invoice"
    EXTRACT = "extract"


class Document(SQLModel, table=True):
    __tablename__ = "documents"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    kind: DocumentKind
    media_type: str  # detected from the content, never taken from the uploader
    filename_sealed: bytes  # the uploader's file name may hold a name: sealed under the case key
    size: int  # plaintext bytes after sanitising
    sha256: str  # of the stored plaintext, hex
    object_key: str = Field(unique=True)
    key_id: uuid.UUID  # the case key that wraps the data key
    wrapped_dek: bytes  # also in the object header; kept here to check the two agree
    frame_size: int
    created_at: datetime
    shredded_at: datetime | None = None
