"""Tables of the data-subject rights: the request register, exports and what an erasure kept.

Ids, times and values from fixed lists only: no free text, so the register can be kept as the
controller's proof of accountability (Art. 5(2)) after the data it is about is gone.
"""

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class Right(enum.StrEnum):
    """The right a request exercises; its value travels in the audit event's ``purpose``."""

    ACCESS = "access"  # Art. 15
    PORTABILITY = "portability"  # Art. 20
    RECTIFICATION = "rectification"  # Art. 16
    ERASURE = "erasure"  # Art. 17
    RESTRICTION = "restriction"  # Art. 18
    OBJECTION = "objection"  # Art. 21
    CONSENT_WITHDRAWAL = "consent-withdrawal"  # Art. 7(3)


class RequestStatus(enum.StrEnum):
    OPEN = "open"  # received, still being served (an export being built)
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially-completed"  # an erasure that had to keep a part
    FAILED = "failed"  # could not be served (the privacy officer must act)


class RightsRequest(SQLModel, table=True):
    """One exercise of a right by a patient, with its due date (one month, Art. 12(3))."""

    __tablename__ = "rights_requests"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True)
    right: Right
    status: RequestStatus = Field(default=RequestStatus.OPEN, index=True)
    received_at: datetime
    due_at: datetime = Field(index=True)
    completed_at: datetime | None = None


class ExportStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for a worker
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"  # past its retention: objects deleted, key destroyed


class SubjectExport(SQLModel, table=True):
    """The archive that answers an access (Art. 15) or portability (Art. 20) request.

    Encrypted in the object store under a key of its own (kind ``export``); deleting the
    export destroys that key, so the archive is unreadable from then on, backups included.
    """

    __tablename__ = "subject_exports"
    # At most one pending export per patient, also against two requests racing each other.
    __table_args__ = (
        sa.Index(
            "uq_subject_exports_one_pending",
            "patient_id",
            unique=True,
            sqlite_where=sa.text("status = 'PENDING'"),
            postgresql_where=sa.text("status = 'PENDING'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    request_id: uuid.UUID = Field(foreign_key="rights_requests.id", unique=True)
    patient_id: uuid.UUID = Field(foreign_key="patients.id", index=True)
    status: ExportStatus = Field(default=ExportStatus.PENDING, index=True)
    key_id: uuid.UUID | None = None  # the export key in keys' store, once building began
    # The build that owns the row (a re-delivered task takes over with a new one); it also
    # names the archive object and is its envelope object id, so a build that lost never
    # overwrites the winner's.
    build_id: uuid.UUID | None = None
    object_key: str | None = None  # kept on a deleted export until its objects are removed
    size: int | None = None  # bytes of the archive (plaintext)
    created_at: datetime
    started_at: datetime | None = None  # when the owning build claimed the row
    ready_at: datetime | None = None
    expires_at: datetime | None = None  # set when ready; deleted from then on
    deleted_at: datetime | None = None


class RetentionGround(enum.StrEnum):
    """Why an erasure kept a case (Art. 17(3)); the value names the paragraph."""

    LEGAL_CLAIMS = "art17-3-e"  # a legal hold: establishment, exercise or defence of claims
    LEGAL_OBLIGATION = "art17-3-b"  # the duty to keep treatment and billing records


class RetainedPart(SQLModel, table=True):
    """A case an erasure request had to keep, on which ground and until when (restricted)."""

    __tablename__ = "rights_retained_parts"

    request_id: uuid.UUID = Field(foreign_key="rights_requests.id", primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", primary_key=True)
    ground: RetentionGround
    # A code from a fixed list: the legal hold's reason (LegalHoldReason) for art17-3-e,
    # "treatment-and-billing-records" for art17-3-b.
    reason: str = Field(max_length=32)
    until: datetime | None = None  # None while a legal hold lasts (no date known)


class ErasedCase(SQLModel, table=True):
    """A case an erasure request erased. Written with the intent (the case marked SHREDDING),
    so whoever finishes the shred, the request itself or a later retention run after a crash,
    records it as an erasure (``case.erase``, keys destroyed for reason "erasure")."""

    __tablename__ = "rights_erased_cases"

    case_id: uuid.UUID = Field(foreign_key="cases.id", primary_key=True)
    request_id: uuid.UUID = Field(foreign_key="rights_requests.id", index=True)


class InterestObjection(SQLModel, table=True):
    """An objection (Art. 21(1)) to processing based on legitimate interests (Art. 6(1)(f)):
    from then on no transfer of the patient's data may rely on that basis."""

    __tablename__ = "interest_objections"

    patient_id: uuid.UUID = Field(foreign_key="patients.id", primary_key=True)
    objected_at: datetime
