"""QA extracts: analysts request, list and download their own; admins create named scopes."""

from __future__ import annotations

import uuid
from contextlib import suppress
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session

from api.deps import (
    AdminUser,
    AnalystUser,
    AuditDep,
    NowDep,
    RuntimeDep,
    SessionDep,
    require_role,
)
from api.metrics import counted
from api.routers.documents import NO_STORE
from infra.tasks import EXTRACTS_BUILD
from infra.wiring import Runtime
from vault.accounts.models import Role, User
from vault.audit.service import AuditContext
from vault.clock import as_utc
from vault.errors import QueueUnavailable
from vault.extracts.models import Extract, ExtractField, ExtractFormat, ExtractScope, ExtractStatus
from vault.extracts.service import (
    create_scope,
    list_extracts,
    list_scopes,
    open_extract_content,
    read_extract,
    request_extract,
)
from vault.json_types import JsonDate

router = APIRouter(tags=["extracts"])

ScopeReader = Annotated[User, Depends(require_role(Role.ANALYST, Role.ADMIN))]
MEDIA_TYPES = {
    ExtractFormat.PARQUET: "application/vnd.apache.parquet",
    ExtractFormat.CSV: "text/csv",
}


class _Answer(BaseModel):
    """A response model: SQLite hands back naive datetimes (written as UTC), given an offset."""

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        return as_utc(value) if isinstance(value, datetime) else value


class ExtractRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "period_from": "2026-01-01",
                    "period_to": "2026-12-31",
                    "fields": ["age_band", "sex", "diagnoses", "treatment_result"],
                    "icd_chapter_only": True,
                    "scope_id": None,
                }
            ]
        },
    )

    period_from: JsonDate
    period_to: JsonDate
    fields: list[ExtractField] = Field(min_length=1)
    icd_chapter_only: bool = False
    scope_id: uuid.UUID | None = None


class ExtractOut(_Answer):
    id: uuid.UUID
    status: ExtractStatus
    scope_id: uuid.UUID | None
    period_from: date
    period_to: date
    fields: list[ExtractField]
    icd_chapter_only: bool
    k: int
    report: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, extract: Extract) -> ExtractOut:
        return cls.model_validate(extract, from_attributes=True)


class ScopeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "qa-2027"}]})

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")


class ScopeOut(_Answer):
    id: uuid.UUID
    name: str
    created_at: datetime

    @classmethod
    def of(cls, scope: ExtractScope) -> ScopeOut:
        return cls.model_validate(scope, from_attributes=True)


def request_and_enqueue(
    *,
    runtime: Runtime,
    session: Session,
    analyst_id: uuid.UUID,
    body: ExtractRequest,
    now: datetime,
    audit: AuditContext,
) -> Extract:
    """Record an analyst's extract request, then (after its commit) send the build task."""
    extract = request_extract(
        session=session,
        keys=runtime.key_store,
        analyst_id=analyst_id,
        period_from=body.period_from,
        period_to=body.period_to,
        fields=body.fields,
        icd_chapter_only=body.icd_chapter_only,
        scope_id=body.scope_id,
        k=runtime.settings.extract_k,
        now=now,
        audit=audit,
    )
    # Recorded and committed: if the broker is down, the sweep sends the build later.
    with suppress(QueueUnavailable):
        runtime.tasks.enqueue(EXTRACTS_BUILD, str(extract.id))
    return extract


def extract_download(
    *,
    runtime: Runtime,
    session: Session,
    extract_id: uuid.UUID,
    analyst_id: uuid.UUID,
    fmt: ExtractFormat,
    now: datetime,
    audit: AuditContext,
) -> StreamingResponse:
    """One of the analyst's ready extracts as an attachment, decrypted as it streams (raises
    NotFound for another's, ExtractNotReady or ExtractExpired before a byte is sent)."""
    chunks = open_extract_content(
        session=session,
        store=runtime.blob_store,
        keys=runtime.key_store,
        extract_id=extract_id,
        analyst_id=analyst_id,
        fmt=fmt,
        now=now,
        audit=audit,
    )
    return StreamingResponse(
        counted(chunks, "extract"),
        media_type=MEDIA_TYPES[fmt],
        headers={
            **NO_STORE,
            "Content-Disposition": f'attachment; filename="extract-{extract_id}.{fmt.value}"',
        },
    )


@router.post("/extracts", status_code=status.HTTP_202_ACCEPTED)
def request_qa_extract(
    body: ExtractRequest,
    user: AnalystUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> ExtractOut:
    """Request a pseudonymised, k-anonymous extract; a worker builds it (poll its status)."""
    extract = request_and_enqueue(
        runtime=runtime, session=session, analyst_id=user.id, body=body, now=now, audit=audit
    )
    return ExtractOut.of(extract)


@router.get("/extracts")
def list_qa_extracts(
    user: AnalystUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[ExtractOut]:
    """Your own extracts, newest first."""
    extracts = list_extracts(session=session, analyst_id=user.id, now=now, audit=audit)
    return [ExtractOut.of(extract) for extract in extracts]


@router.get("/extracts/{extract_id}")
def read_qa_extract(
    extract_id: uuid.UUID, user: AnalystUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> ExtractOut:
    """One of your extracts: its status and, once built, its anonymity report."""
    extract = read_extract(
        session=session, extract_id=extract_id, analyst_id=user.id, now=now, audit=audit
    )
    return ExtractOut.of(extract)


@router.get(
    "/extracts/{extract_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in MEDIA_TYPES.values()
            }
        }
    },
)
def download_qa_extract(
    extract_id: uuid.UUID,
    user: AnalystUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
    format: Annotated[ExtractFormat, Query()] = ExtractFormat.PARQUET,
) -> StreamingResponse:
    """Download one of your ready extracts as Parquet or CSV, decrypted as it streams."""
    return extract_download(
        runtime=runtime,
        session=session,
        extract_id=extract_id,
        analyst_id=user.id,
        fmt=format,
        now=now,
        audit=audit,
    )


@router.post("/admin/extract-scopes", status_code=status.HTTP_201_CREATED)
def create_extract_scope(
    body: ScopeRequest,
    admin: AdminUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> ScopeOut:
    """Create a named pseudonym scope: extracts requested in it share pseudonyms."""
    scope = create_scope(
        session=session,
        keys=runtime.key_store,
        name=body.name,
        created_by=admin.id,
        now=now,
        audit=audit,
    )
    return ScopeOut.of(scope)


@router.get("/extract-scopes")
def list_extract_scopes(
    _user: ScopeReader, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[ScopeOut]:
    """The named pseudonym scopes (analysts choose one when requesting an extract)."""
    return [ScopeOut.of(scope) for scope in list_scopes(session=session, now=now, audit=audit)]
