"""Cases: patients open their own; coordinators list, read, record the outcome and complete them.

A patient sees only their own cases; anyone else's answers 404 exactly like an unknown id.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session

from api.deps import (
    MAX_DB_INTEGER,
    AuditDep,
    CaseWorker,
    CoordinatorUser,
    NowDep,
    PatientUser,
    RuntimeDep,
    SessionDep,
)
from vault.accounts.models import Role, User
from vault.cases.models import Case, CaseOutcome, CaseStatus
from vault.cases.service import (
    MAX_PAGE,
    complete_case,
    list_cases,
    open_case,
    read_case,
    record_outcome,
    restricted_since,
    unsafe_case_outcome,
)
from vault.clock import as_utc
from vault.errors import Forbidden
from vault.json_types import JsonAwareDatetime

router = APIRouter(tags=["cases"])


def own_patient_id(user: User) -> uuid.UUID:
    if user.patient_id is None:
        raise Forbidden("this account has no patient record")
    return user.patient_id


def patient_scope(user: User) -> uuid.UUID | None:
    """The patient whose cases ``user`` may reach; None for a coordinator (every case)."""
    return None if user.role is Role.COORDINATOR else own_patient_id(user)


class CaseOpened(BaseModel):
    id: uuid.UUID
    status: CaseStatus
    created_at: datetime

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        # SQLite hands back naive datetimes (written as UTC): answer with an explicit offset.
        return as_utc(value) if isinstance(value, datetime) else value


class CaseSummary(CaseOpened):
    patient_id: uuid.UUID
    treatment_completed_at: datetime | None
    outcome_recorded_at: datetime | None
    restricted: bool = Field(
        description="Processing is restricted (Art. 18): kept, but not forwarded or extracted."
    )
    restricted_since: datetime | None

    @classmethod
    def of(cls, case: Case, restrictions: Mapping[uuid.UUID, datetime]) -> CaseSummary:
        since = restrictions.get(case.id)
        return cls.model_validate(
            {
                **case.model_dump(),
                "restricted": since is not None,
                "restricted_since": since,
            }
        )

    @classmethod
    def one(cls, session: Session, case: Case) -> CaseSummary:
        return cls.of(case, restricted_since(session=session, cases=[case]))


class CaseDetail(CaseSummary):
    outcome: CaseOutcome | None


class Completion(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"completed_at": "2026-10-15T12:00:00Z"}]}
    )

    completed_at: JsonAwareDatetime


@router.post("/cases", status_code=status.HTTP_201_CREATED)
def open_own_case(
    user: PatientUser, session: SessionDep, runtime: RuntimeDep, now: NowDep, audit: AuditDep
) -> CaseOpened:
    """File a treatment request: a new case of the signed-in patient, with its own key."""
    case = open_case(
        session=session,
        keys=runtime.key_store,
        patient_id=own_patient_id(user),
        now=now,
        audit=audit,
    )
    return CaseOpened.model_validate(case, from_attributes=True)


@router.get("/cases")
def list_visible_cases(
    user: CaseWorker,
    session: SessionDep,
    now: NowDep,
    audit: AuditDep,
    status: CaseStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_INTEGER)] = 0,
) -> list[CaseSummary]:
    """Cases newest first: every case for a coordinator, their own for a patient."""
    cases = list_cases(
        session=session,
        patient_id=patient_scope(user),
        status=status,
        limit=limit,
        offset=offset,
        now=now,
        audit=audit,
    )
    restrictions = restricted_since(session=session, cases=cases)
    session.commit()  # no transaction (on SQLite: the write lock) while the answer is built
    return [CaseSummary.of(case, restrictions) for case in cases]


@router.get("/cases/{case_id}")
def get_case_detail(
    case_id: uuid.UUID,
    user: CaseWorker,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> CaseDetail:
    """One case with its outcome (410 once the case was shredded)."""
    case = read_case(
        session=session, case_id=case_id, patient_id=patient_scope(user), now=now, audit=audit
    )
    outcome = unsafe_case_outcome(session=session, keys=runtime.key_store, case=case)
    return CaseDetail(**CaseSummary.one(session, case).model_dump(), outcome=outcome)


@router.put("/cases/{case_id}/outcome")
def put_case_outcome(
    case_id: uuid.UUID,
    outcome: CaseOutcome,
    _user: CoordinatorUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> CaseDetail:
    """Record (or correct) the structured outcome: diagnoses, result, dates, final invoice."""
    case = record_outcome(
        session=session,
        keys=runtime.key_store,
        case_id=case_id,
        outcome=outcome,
        now=now,
        audit=audit,
    )
    return CaseDetail(**CaseSummary.one(session, case).model_dump(), outcome=outcome)


@router.post("/cases/{case_id}/complete")
def complete_treatment(
    case_id: uuid.UUID,
    completion: Completion,
    _user: CoordinatorUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> CaseSummary:
    """Mark treatment completed (once): the five-year retention clock starts at this date."""
    case = complete_case(
        session=session,
        keys=runtime.key_store,
        case_id=case_id,
        completed_at=completion.completed_at,
        retention_years=runtime.settings.retention_years,
        now=now,
        audit=audit,
    )
    return CaseSummary.one(session, case)
