"""Erasure (Art. 17): the patient asks, the product erases what it may and says what it keeps.

The patient confirms in the body (``{"confirm": true}``): an erasure cannot be undone, so an
empty or accidental call is refused (422) and changes nothing. The privacy officer sees each
erasure's kept parts next to the request register.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, field_validator
from sqlmodel import Session

from api.deps import AdminUser, AuditDep, NowDep, PatientUser, RuntimeDep, SessionDep
from api.routers.cases import own_patient_id
from api.routers.rights import RightsRequestOut
from infra.wiring import Runtime
from vault.audit.service import AuditContext
from vault.clock import as_utc
from vault.subject_rights.erasure import (
    ErasureOutcome,
    KeptPart,
    erase_patient_data,
    retained_parts,
)
from vault.subject_rights.models import RequestStatus, RetentionGround

router = APIRouter(tags=["rights"])

EXAMPLE_ID = "0b7e6f5c-3f4a-4d2b-9a52-6a1d2c9e8f10"


class _Answer(BaseModel):
    """A response model: SQLite hands back naive datetimes (written as UTC), given an offset."""

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        return as_utc(value) if isinstance(value, datetime) else value


class ErasureConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"confirm": True}]})

    confirm: Literal[True]


class KeptPartOut(_Answer):
    """A case kept: ``art17-3-e`` while a legal hold lasts (``until`` null), ``art17-3-b``
    until the end of the retention of treatment and billing records. Restricted meanwhile."""

    case_id: uuid.UUID
    ground: RetentionGround
    reason: str
    until: datetime | None

    @classmethod
    def of(cls, part: KeptPart) -> KeptPartOut:
        return cls.model_validate(part, from_attributes=True)


class ErasureOut(BaseModel):
    """What was erased, what was kept and why, and the account (closed for good)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request": {
                        "id": EXAMPLE_ID,
                        "patient_id": EXAMPLE_ID,
                        "right": "erasure",
                        "status": "partially-completed",
                        "received_at": "2026-11-24T09:00:00Z",
                        "due_at": "2026-12-24T09:00:00Z",
                        "completed_at": "2026-11-24T09:00:00Z",
                        "overdue": False,
                    },
                    "status": "partially-completed",
                    "erased_cases": [EXAMPLE_ID],
                    "kept": [
                        {
                            "case_id": EXAMPLE_ID,
                            "ground": "art17-3-b",
                            "reason": "treatment-and-billing-records",
                            "until": "2031-11-24T09:00:00Z",
                        }
                    ],
                    "account": "disabled",
                }
            ]
        }
    )

    request: RightsRequestOut
    status: RequestStatus
    erased_cases: list[uuid.UUID]
    kept: list[KeptPartOut]
    account: Literal["disabled"] = "disabled"

    @classmethod
    def of(cls, outcome: ErasureOutcome, *, now: datetime) -> ErasureOut:
        return cls(
            request=RightsRequestOut.of(outcome.request, now=now),
            status=outcome.status,
            erased_cases=list(outcome.erased_cases),
            kept=[KeptPartOut.of(part) for part in outcome.kept],
        )


def erase_own_data(
    *,
    runtime: Runtime,
    session: Session,
    patient_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
) -> ErasureOutcome:
    """The patient's erasure request, served with this deployment's store, keys and retention
    period (see :func:`erase_patient_data`); the patient's accounts are closed by it."""
    return erase_patient_data(
        session=session,
        store=runtime.blob_store,
        keys=runtime.key_store,
        patient_id=patient_id,
        retention_years=runtime.settings.retention_years,
        now=now,
        audit=audit,
    )


@router.post("/me/erasure")
def erase_my_data(
    body: ErasureConfirmation,
    user: PatientUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> ErasureOut:
    """Erase your data (GDPR Art. 17). What a legal duty or a legal hold requires is kept,
    restricted, and listed with its ground and until when; your account is closed for good."""
    outcome = erase_own_data(
        runtime=runtime, session=session, patient_id=own_patient_id(user), now=now, audit=audit
    )
    return ErasureOut.of(outcome, now=now)


@router.get("/admin/rights-requests/{request_id}/retained")
def list_erasure_retained_parts(
    request_id: uuid.UUID, _user: AdminUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[KeptPartOut]:
    """What an erasure request kept, on which ground and until when (empty if nothing)."""
    parts = retained_parts(session, request_id=request_id, now=now, audit=audit)
    return [KeptPartOut.of(part) for part in parts]
