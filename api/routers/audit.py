"""The audit chain for the privacy officer (admin only): verify it, seal it, page through it.

Every call is itself recorded in the chain (audit.verify, audit.checkpoint, audit.list).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, field_validator
from sqlmodel import Session

from api.deps import MAX_DB_INTEGER, AdminUser, AuditDep, NowDep, RuntimeDep, SessionDep
from infra.wiring import Runtime
from vault.audit.service import (
    MAX_LIST_LIMIT,
    AuditContext,
    checkpoint_audit_log,
    list_events,
    verify_audit_log,
)
from vault.clock import as_utc

router = APIRouter(prefix="/admin/audit", tags=["audit"])

EXAMPLE_HASH = "9f2c" + "0" * 60


class _UtcModel(BaseModel):
    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        # SQLite hands back naive datetimes (written as UTC): answer with an explicit offset.
        return as_utc(value) if isinstance(value, datetime) else value


class VerifyResult(BaseModel):
    """``reason`` is a fixed phrase (e.g. "hash mismatch", "sequence gap"), or null when ok."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "ok": False,
                    "events_checked": 41,
                    "first_broken_seq": 42,
                    "reason": "hash mismatch",
                    "checkpoints_checked": 3,
                }
            ]
        },
    )

    ok: bool
    events_checked: int
    first_broken_seq: int | None
    reason: str | None
    checkpoints_checked: int


class CheckpointWritten(_UtcModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [{"seq": 1042, "hash": EXAMPLE_HASH, "at": "2026-11-24T09:00:00Z"}]
        },
    )

    seq: int
    hash: str
    at: datetime


class AuditEventPublic(_UtcModel):
    """One event: ids only, never names or contents; ``client`` is an anonymised address."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    at: datetime
    action: str
    actor_kind: str
    actor_id: uuid.UUID | None
    client: str | None
    patient_id: uuid.UUID | None
    case_id: uuid.UUID | None
    document_id: uuid.UUID | None
    transfer_id: uuid.UUID | None
    link_id: uuid.UUID | None
    partner_id: uuid.UUID | None
    user_id: uuid.UUID | None
    legal_basis: str | None
    purpose: str | None
    outcome: str
    prev_hash: str
    hash: str


class AuditEventPage(BaseModel):
    """A page of events; pass ``next_after_seq`` as ``after_seq`` for the next one."""

    events: list[AuditEventPublic]
    next_after_seq: int | None


def verify_chain_now(
    *, runtime: Runtime, session: Session, audit: AuditContext, now: datetime
) -> VerifyResult:
    """Verify the chain and commit the ``audit.verify`` event recording that it was done."""
    report = verify_audit_log(
        session,
        store=runtime.blob_store,
        signing_key=runtime.secrets.audit_signing_key,
        audit=audit,
        now=now,
    )
    session.commit()
    return VerifyResult.model_validate(report)


def seal_chain_now(
    *, runtime: Runtime, session: Session, audit: AuditContext, now: datetime
) -> CheckpointWritten:
    """Write a signed checkpoint of the chain's head and commit its ``audit.checkpoint`` event."""
    written = checkpoint_audit_log(
        session,
        store=runtime.blob_store,
        signing_key=runtime.secrets.audit_signing_key,
        audit=audit,
        now=now,
    )
    session.commit()
    return CheckpointWritten.model_validate(written)


@router.post("/verify", response_model=VerifyResult)
def verify_audit_chain(
    _admin: AdminUser, session: SessionDep, runtime: RuntimeDep, audit: AuditDep, now: NowDep
) -> VerifyResult:
    """Recompute the whole chain and check every signed checkpoint; report the first break."""
    return verify_chain_now(runtime=runtime, session=session, audit=audit, now=now)


@router.post("/checkpoints", response_model=CheckpointWritten, status_code=status.HTTP_201_CREATED)
def write_audit_checkpoint(
    _admin: AdminUser, session: SessionDep, runtime: RuntimeDep, audit: AuditDep, now: NowDep
) -> CheckpointWritten:
    """Sign the chain's current head and store the checkpoint in the object store."""
    return seal_chain_now(runtime=runtime, session=session, audit=audit, now=now)


@router.get("/events", response_model=AuditEventPage)
def list_audit_events(
    _admin: AdminUser,
    session: SessionDep,
    audit: AuditDep,
    now: NowDep,
    after_seq: Annotated[
        int, Query(ge=0, le=MAX_DB_INTEGER, description="Return events after this seq.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT)] = 100,
) -> AuditEventPage:
    """Events in chain order, ``limit`` at a time."""
    page = list_events(session, audit=audit, now=now, after_seq=after_seq, limit=limit)
    result = AuditEventPage(
        events=[AuditEventPublic.model_validate(event) for event in page],
        next_after_seq=page[-1].seq if len(page) == limit else None,
    )
    session.commit()
    return result
