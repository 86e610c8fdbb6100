"""Access (Art. 15) and portability (Art. 20) exports: requested by the patient, built by a
worker, downloaded through a signed link that expires.

The download link is a capability URL: whoever holds it gets the archive until it expires
(``export_link_minutes``), so it is issued only to the signed-in patient and answered
``no-store``; its signature travels in the query string, which the access log never writes.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator
from sqlmodel import Session

from api.deps import AuditDep, ClientDep, NowDep, PatientUser, RuntimeDep, SessionDep
from api.metrics import counted
from api.routers.cases import own_patient_id
from api.routers.documents import NO_STORE
from infra.tasks import EXPORTS_BUILD
from infra.wiring import Runtime
from vault.audit.models import ActorKind
from vault.audit.service import AuditContext
from vault.clock import as_utc
from vault.errors import QueueUnavailable
from vault.subject_rights.export_data import subject_data_schema
from vault.subject_rights.exports import (
    MAX_EXPIRES,
    PatientExport,
    issue_export_link,
    list_exports,
    open_export_download,
    read_export,
    request_export,
)
from vault.subject_rights.models import ExportStatus, Right

router = APIRouter(tags=["rights"])

_SIGNATURE_CHARACTERS = 128  # generous: a wrong one is refused by the service, not by parsing
_DOWNLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The link is not valid (its signature does not verify)."},
    410: {"description": "The link expired, or the export was deleted."},
}


class _Answer(BaseModel):
    """A response model: SQLite hands back naive datetimes (written as UTC), given an offset."""

    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: object) -> object:
        return as_utc(value) if isinstance(value, datetime) else value


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"right": "access"}]})

    right: Literal["access", "portability"]


class ExportOut(_Answer):
    """An export: what it answers, its state, and when it is deleted."""

    id: uuid.UUID
    right: Right
    status: ExportStatus
    request_id: uuid.UUID
    due_at: datetime  # the request's due date (one month, Art. 12(3))
    created_at: datetime
    ready_at: datetime | None
    expires_at: datetime | None  # deleted from then on
    deleted_at: datetime | None
    size: int | None

    @classmethod
    def of(cls, found: PatientExport) -> ExportOut:
        export, request = found.export, found.request
        return cls(
            id=export.id,
            right=request.right,
            status=export.status,
            request_id=request.id,
            due_at=request.due_at,
            created_at=export.created_at,
            ready_at=export.ready_at,
            expires_at=export.expires_at,
            deleted_at=export.deleted_at,
            size=export.size,
        )


class ExportLinkOut(BaseModel):
    url: str
    expires_at: AwareDatetime


def start_export(
    *,
    runtime: Runtime,
    session: Session,
    patient_id: uuid.UUID,
    right: Right,
    now: datetime,
    audit: AuditContext,
) -> PatientExport:
    """Register an access or portability request with its pending export, then send its build
    (ExportPending while another export of the patient's is pending; nothing stored then)."""
    found = request_export(
        session=session, patient_id=patient_id, right=right, now=now, audit=audit
    )
    # Recorded and committed: if the broker is down, the sweep sends the build later.
    with suppress(QueueUnavailable):
        runtime.tasks.enqueue(EXPORTS_BUILD, str(found.export.id))
    return found


def export_link(
    *,
    runtime: Runtime,
    session: Session,
    export_id: uuid.UUID,
    patient_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
) -> ExportLinkOut:
    """The signed download link of a ready export of the patient's (NotFound for anyone
    else's), valid for ``export_link_minutes``: a capability, for the patient's eyes only."""
    link = issue_export_link(
        session=session,
        link_key=runtime.secrets.export_link_key,
        export_id=export_id,
        patient_id=patient_id,
        ttl=timedelta(minutes=runtime.settings.export_link_minutes),
        now=now,
        audit=audit,
    )
    url = f"/exports/{link.export_id}/download?expires={link.expires}&signature={link.signature}"
    return ExportLinkOut(url=url, expires_at=link.expires_at)


@router.post("/me/exports", status_code=status.HTTP_202_ACCEPTED)
def request_my_export(
    body: ExportRequest,
    user: PatientUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> ExportOut:
    """Ask for your data: ``access`` (Art. 15) or ``portability`` (Art. 20, with a FHIR
    bundle). A worker builds the archive; poll its status, then ask for a download link."""
    found = start_export(
        runtime=runtime,
        session=session,
        patient_id=own_patient_id(user),
        right=Right(body.right),
        now=now,
        audit=audit,
    )
    return ExportOut.of(found)


@router.get("/me/exports")
def list_my_exports(
    user: PatientUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> list[ExportOut]:
    """Your exports, newest first."""
    found = list_exports(session=session, patient_id=own_patient_id(user), now=now, audit=audit)
    return [ExportOut.of(item) for item in found]


@router.get("/me/exports/{export_id}")
def read_my_export(
    export_id: uuid.UUID, user: PatientUser, session: SessionDep, now: NowDep, audit: AuditDep
) -> ExportOut:
    """One of your exports: whether it is ready, and until when it is kept."""
    found = read_export(
        session=session, export_id=export_id, patient_id=own_patient_id(user), now=now, audit=audit
    )
    return ExportOut.of(found)


@router.post("/me/exports/{export_id}/link")
def link_my_export(
    export_id: uuid.UUID,
    user: PatientUser,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> ExportLinkOut:
    """A download link for one of your ready exports, valid for a few minutes."""
    return export_link(
        runtime=runtime,
        session=session,
        export_id=export_id,
        patient_id=own_patient_id(user),
        now=now,
        audit=audit,
    )


@router.get(
    "/exports/{export_id}/download",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **_DOWNLOAD_ERRORS,
    },
)
def download_subject_export(
    export_id: uuid.UUID,
    expires: Annotated[int, Query(ge=0, lt=MAX_EXPIRES)],
    signature: Annotated[str, Query(max_length=_SIGNATURE_CHARACTERS)],
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    client: ClientDep,
) -> StreamingResponse:
    """Download an export through its signed link (no sign-in: the link is the permission)."""
    download = open_export_download(
        session=session,
        store=runtime.blob_store,
        keys=runtime.key_store,
        link_key=runtime.secrets.export_link_key,
        export_id=export_id,
        expires=expires,
        signature=signature,
        now=now,
        # The holder of a link is not signed in: only their (anonymised) address is known.
        audit=AuditContext(ActorKind.ANONYMOUS, None, client),
    )
    return StreamingResponse(
        counted(download.chunks, "export"),
        media_type="application/zip",
        headers={
            **NO_STORE,
            "Content-Length": str(download.size),
            "Content-Disposition": f'attachment; filename="medvault-export-{export_id}.zip"',
        },
    )


@router.get(
    "/schemas/subject-export.json",
    response_class=JSONResponse,
    responses={200: {"content": {"application/schema+json": {}}}},
)
def get_subject_export_schema() -> JSONResponse:
    """The published JSON schema of the personal-data document in every export (public)."""
    return JSONResponse(subject_data_schema(), media_type="application/schema+json")
