"""Link tables. A link's token and access code are never stored: only the token's SHA-256 and
the code's argon2id hash. Whether a link is revoked is its transfer's ``revoked_at``."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel


class Link(SQLModel, table=True):
    __tablename__ = "links"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    transfer_id: uuid.UUID = Field(foreign_key="transfers.id", unique=True)
    token_digest: str = Field(unique=True, max_length=64)  # hex SHA-256 of the token
    code_hash: str  # argon2id of the access code, PHC string format
    created_at: datetime
    expires_at: datetime  # the link is gone from this instant on
    max_downloads: int
    downloads: int = 0
    max_code_attempts: int  # wrong codes that lock the link
    failed_codes: int = 0
    locked_at: datetime | None = None


class LinkDownload(SQLModel, table=True):
    """One successful download of one document through a link."""

    __tablename__ = "link_downloads"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    link_id: uuid.UUID = Field(foreign_key="links.id", index=True)
    document_id: uuid.UUID = Field(foreign_key="documents.id")
    at: datetime
