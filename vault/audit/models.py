"""Audit tables: the append-only, hash-chained event log and its single head row.

Events carry ids only, never names, contents or free text; the client address is anonymised
before it gets here (``vault.audit.addresses``).
"""

import enum
import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

GENESIS_HASH = "0" * 64  # the prev_hash of event 1


class ActorKind(enum.StrEnum):
    USER = "user"
    PARTNER = "partner"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


class AuditAction(enum.StrEnum):
    """What happened. Append-only: a value, once written to the log, must never change."""

    AUTH_LOGIN = "auth.login"
    AUTH_LOGIN_FAILED = "auth.login_failed"
    AUTH_LOCKED = "auth.locked"
    AUTH_LOGOUT = "auth.logout"
    AUTH_REFRESH = "auth.refresh"
    USER_CREATE = "user.create"
    USER_DISABLE = "user.disable"
    PATIENT_REGISTER = "patient.register"
    PATIENT_INVITE = "patient.invite"
    PATIENT_READ = "patient.read"
    CASE_OPEN = "case.open"
    CASE_READ = "case.read"
    CASE_LIST = "case.list"
    CASE_OUTCOME = "case.outcome"
    CASE_COMPLETE = "case.complete"
    CONSENT_GIVE = "consent.give"
    CONSENT_WITHDRAW = "consent.withdraw"
    RESTRICTION_PLACE = "restriction.place"
    RESTRICTION_LIFT = "restriction.lift"
    DOCUMENT_STORE = "document.store"
    DOCUMENT_READ = "document.read"
    DOCUMENT_LIST = "document.list"
    TRANSFER_CREATE = "transfer.create"
    TRANSFER_REFUSED = "transfer.refused"
    TRANSFER_REVOKE = "transfer.revoke"
    TRANSFER_LIST = "transfer.list"
    DISCLOSURE_LIST = "disclosure.list"
    LINK_OPEN = "link.open"
    LINK_DOWNLOAD = "link.download"
    LINK_CODE_FAILED = "link.code_failed"
    LINK_LOCKED = "link.locked"
    LINK_REFUSED = "link.refused"
    PARTNER_CREATE = "partner.create"
    PARTNER_UPDATE = "partner.update"
    PARTNER_LIST = "partner.list"
    AUDIT_VERIFY = "audit.verify"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    AUDIT_LIST = "audit.list"
    # transfers
    PARTNER_DISABLE = "partner.disable"
    CONSENT_LIST = "consent.list"
    # accounts
    AUTH_CONFIRM_EMAIL = "auth.confirm_email"
    AUTH_ACCEPT_INVITATION = "auth.accept_invitation"
    USER_LIST = "user.list"
    # retention
    CASE_SHRED = "case.shred"
    PATIENT_ERASE = "patient.erase"
    LEGAL_HOLD_PLACE = "legal_hold.place"
    LEGAL_HOLD_LIFT = "legal_hold.lift"
    RETENTION_PREVIEW = "retention.preview"
    AUDIT_PURGE = "audit.purge"
    # QA extracts (the extract's id travels in ``document_id``: an extract is a stored object)
    SURVEY_ANSWER = "survey.answer"
    QA_CONSENT_WITHDRAW = "qa_consent.withdraw"
    QA_OBJECTION = "objection.qa"
    EXTRACT_SCOPE_CREATE = "extract_scope.create"
    EXTRACT_SCOPE_LIST = "extract_scope.list"
    EXTRACT_REQUEST = "extract.request"
    EXTRACT_LIST = "extract.list"
    EXTRACT_READ = "extract.read"
    EXTRACT_BUILD = "extract.build"
    EXTRACT_DOWNLOAD = "extract.download"
    EXTRACT_SHRED = "extract.shred"
    # data-subject rights (the right served travels in ``purpose``: access, erasure, ...)
    RIGHTS_REQUEST = "rights.request"
    RIGHTS_COMPLETE = "rights.complete"
    RIGHTS_LIST = "rights.list"
    PATIENT_RECTIFY = "patient.rectify"
    INTERESTS_OBJECTION = "objection.legitimate_interests"
    CASE_ERASE = "case.erase"
    EXPORT_BUILD = "export.build"
    EXPORT_LINK = "export.link"
    EXPORT_DOWNLOAD = "export.download"
    EXPORT_DELETE = "export.delete"
    RESTRICTION_LIST = "restriction.list"
    # storage: the sweep deleted objects no row owned or aborted unfinished uploads (no ids)
    STORAGE_SWEEP = "storage.sweep"


class AuditEvent(SQLModel, table=True):
    """One event. ``hash`` is SHA-256 over the canonical encoding (``vault.audit.chain``)."""

    __tablename__ = "audit_events"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    action: str
    actor_kind: str
    actor_id: uuid.UUID | None = None
    client: str | None = None
    patient_id: uuid.UUID | None = Field(default=None, index=True)
    case_id: uuid.UUID | None = Field(default=None, index=True)
    document_id: uuid.UUID | None = None
    transfer_id: uuid.UUID | None = None
    link_id: uuid.UUID | None = None
    partner_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    legal_basis: str | None = None
    purpose: str | None = None
    outcome: str = "ok"
    prev_hash: str
    hash: str


class AuditHead(SQLModel, table=True):
    """The chain's head (always one row, id 1): locked on every append to serialise writers."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    seq: int = 0
    hash: str = GENESIS_HASH
