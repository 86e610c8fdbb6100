"""Retention for the privacy officer (admin only): legal holds, and a dry run of the next shred.

Placing or lifting a hold and previewing are recorded in the audit chain (legal_hold.place,
legal_hold.lift, retention.preview). The preview changes nothing else.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, field_validator
from sqlmodel import Session

from api.deps import AdminUser, AuditDep, NowDep, RuntimeDep, SessionDep
from infra.wiring import Runtime
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseStatus, LegalHoldReason
from vault.cases.service import lift_legal_hold, place_legal_hold
from vault.clock import as_utc
from vault.retention.service import RetentionReport, run_retention

router = APIRouter(tags=["retention"])

EXAMPLE_ID = "0b7e6f5c-3f4a-4d2b-9a52-6a1d2c9e8f10"


class _UtcModel(BaseModel):
    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        # SQLite hands back naive datetimes (written as UTC): answer with an explicit offset.
        return as_utc(value) if isinstance(value, datetime) else value


class LegalHoldRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "litigation"}]}
    )

    reason: LegalHoldReason


class LegalHoldState(_UtcModel):
    """A case's hold: ``legal_hold_at`` and ``legal_hold_reason`` are null once lifted."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: CaseStatus
    legal_hold_at: datetime | None
    legal_hold_reason: LegalHoldReason | None

    @classmethod
    def of(cls, case: Case) -> LegalHoldState:
        return cls.model_validate(case, from_attributes=True)


class DueDatePublic(_UtcModel):
    case_id: uuid.UUID
    due_at: datetime


class HeldCasePublic(DueDatePublic):
    reason: LegalHoldReason
    held_since: datetime


class RetentionPreview(BaseModel):
    """What a retention run would do now: ``due`` are shredded by it, ``held`` are kept under
    a legal hold, ``next_due`` fall due next, ``epochs`` lose their root key once empty."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "due": [EXAMPLE_ID],
                    "held": [],
                    "next_due": [{"case_id": EXAMPLE_ID, "due_at": "2031-11-24T09:00:00Z"}],
                    "epochs": ["2031-10"],
                }
            ]
        }
    )

    due: list[uuid.UUID]
    held: list[HeldCasePublic]
    next_due: list[DueDatePublic]
    epochs: list[str]

    @classmethod
    def of(cls, report: RetentionReport) -> RetentionPreview:
        return cls(
            due=list(report.due),
            held=[
                HeldCasePublic.model_validate(held, from_attributes=True) for held in report.held
            ],
            next_due=[
                DueDatePublic.model_validate(entry, from_attributes=True)
                for entry in report.next_due
            ],
            epochs=list(report.epochs_destroyed),
        )


def retention_preview(
    *, runtime: Runtime, session: Session, now: datetime, audit: AuditContext
) -> RetentionPreview:
    """The retention job's dry run (recorded as ``retention.preview``; changes nothing else)."""
    report = run_retention(
        session=session,
        store=runtime.blob_store,
        keys=runtime.key_store,
        retention_years=runtime.settings.retention_years,
        now=now,
        dry_run=True,
        audit=audit,
    )
    return RetentionPreview.of(report)


@router.post("/admin/cases/{case_id}/legal-hold")
def place_case_legal_hold(
    case_id: uuid.UUID,
    request: LegalHoldRequest,
    _user: AdminUser,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
) -> LegalHoldState:
    """Keep a case past its retention period (410 if it was already shredded)."""
    case = place_legal_hold(
        session=session, case_id=case_id, reason=request.reason, now=now, audit=audit
    )
    return LegalHoldState.of(case)


@router.post("/admin/cases/{case_id}/legal-hold/lift")
def lift_case_legal_hold(
    case_id: uuid.UUID, _user: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> LegalHoldState:
    """Lift a case's legal hold; if its retention period is over, the next run shreds it."""
    case = lift_legal_hold(session=session, case_id=case_id, now=now, audit=audit)
    return LegalHoldState.of(case)


@router.get("/admin/retention/preview")
def preview_retention(
    _user: AdminUser, session: SessionDep, runtime: RuntimeDep, now: NowDep, audit: AuditDep
) -> RetentionPreview:
    """A dry run of the retention job: what it would shred now, what is held, what is next."""
    return retention_preview(runtime=runtime, session=session, now=now, audit=audit)
