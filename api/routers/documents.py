"""Documents of a case: streamed uploads (multipart form or raw body), listing, downloads.

Patients reach their own cases only (anyone else's answers 404 like an unknown id);
coordinators reach every case. Uploads stream through :mod:`api.uploads` into the vault;
downloads stream the verified plaintext frame by frame after the read event is committed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import AuditDep, CaseWorker, NowDep, RuntimeDep, SessionDep
from api.metrics import counted
from api.routers.cases import patient_scope
from api.uploads import (
    MULTIPART_OVERHEAD,
    MultipartUpload,
    raw_body,
    refuse_declared_oversize,
    safe_upload_name,
    store_streamed,
)
from infra.wiring import Runtime
from vault.audit.service import AuditContext
from vault.clock import as_utc
from vault.documents.models import Document, DocumentKind
from vault.documents.service import (
    list_documents,
    read_document,
    store_document,
    unsafe_document_filenames,
)
from vault.errors import InvalidDocument
from vault.intake.detect import ACCEPTED_TYPES

router = APIRouter(tags=["documents"])

UPLOAD_KINDS = (DocumentKind.RECORD, DocumentKind.INVOICE)
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

_FILE_BODY = {"type": "string", "format": "binary"}
_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file itself (PDF, JPEG, PNG or TIFF; the type is read from it).",
        "content": {"application/octet-stream": {"schema": _FILE_BODY}},
    }
}
_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["kind", "file"],
                    "properties": {
                        "kind": {"type": "string", "enum": [kind.value for kind in UPLOAD_KINDS]},
                        "file": _FILE_BODY,
                    },
                },
                "encoding": {"kind": {"contentType": "text/plain"}},
            }
        },
        "description": "`kind` first, then `file` (the order browsers send a form in).",
    }
}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"description": "The file is larger than the limit (refused before it is read)."},
    422: {"description": "The file was refused: wrong type, damaged, or an unsafe PDF."},
}


class DocumentStored(BaseModel):
    id: uuid.UUID
    kind: DocumentKind
    media_type: str
    size: int
    sha256: str


class DocumentListed(DocumentStored):
    created_at: datetime
    filename: str


@router.post(
    "/cases/{case_id}/documents",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_FORM_BODY,
    responses=_REFUSALS,
)
async def upload_form(
    case_id: uuid.UUID,
    request: Request,
    user: CaseWorker,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> DocumentStored:
    """Upload a record or invoice as a multipart form, streamed (never spooled by the API)."""
    limits = runtime.intake_limits
    refuse_declared_oversize(request, limits, slack=MULTIPART_OVERHEAD)
    scope = patient_scope(user)
    await run_in_threadpool(session.commit)  # no transaction is held while the body arrives
    form = MultipartUpload(request, limits=limits)
    await form.open()
    document = await stream_into_case(
        form.file_bytes(),
        runtime=runtime,
        session=session,
        case_id=case_id,
        patient_id=scope,
        kind=upload_kind(form.fields.get("kind")),
        filename=form.filename,
        now=now,
        audit=audit,
    )
    return DocumentStored.model_validate(document, from_attributes=True)


@router.put(
    "/cases/{case_id}/uploads/{filename}",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_RAW_BODY,
    responses=_REFUSALS,
)
async def upload_raw(
    case_id: uuid.UUID,
    filename: Annotated[str, Path(max_length=255)],
    kind: DocumentKind,
    request: Request,
    user: CaseWorker,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> DocumentStored:
    """Upload a record or invoice as the raw request body: no multipart parsing, streamed."""
    refuse_declared_oversize(request, runtime.intake_limits)
    scope = patient_scope(user)
    document = await stream_into_case(
        raw_body(request),
        runtime=runtime,
        session=session,
        case_id=case_id,
        patient_id=scope,
        kind=upload_kind(kind),
        filename=filename,
        now=now,
        audit=audit,
    )
    return DocumentStored.model_validate(document, from_attributes=True)


@router.get("/cases/{case_id}/documents")
def list_case_documents(
    case_id: uuid.UUID,
    user: CaseWorker,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> list[DocumentListed]:
    """The case's documents, oldest first, with the uploader's file names."""
    return listed_documents(
        runtime=runtime,
        session=session,
        case_id=case_id,
        patient_id=patient_scope(user),
        now=now,
        audit=audit,
    )


def listed_documents(
    *,
    runtime: Runtime,
    session: Session,
    case_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    now: datetime,
    audit: AuditContext,
) -> list[DocumentListed]:
    """The case's documents with their file names (``patient_id`` scopes them, as the API does)."""
    documents = list_documents(
        session=session, case_id=case_id, patient_id=patient_id, now=now, audit=audit
    )
    filenames = unsafe_document_filenames(
        session=session, keys=runtime.key_store, documents=documents
    )
    # The key lookup's transaction ends before the answer is built: on SQLite every
    # transaction holds the one write lock, and under load the others waited past
    # busy_timeout (503) while long lists were validated and serialised (tests/load).
    session.commit()
    return [
        DocumentListed(
            **DocumentStored.model_validate(document, from_attributes=True).model_dump(),
            created_at=as_utc(document.created_at),
            filename=filename,
        )
        for document, filename in zip(documents, filenames, strict=True)
    ]


@router.get(
    "/documents/{document_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {media_type: {"schema": _FILE_BODY} for media_type in ACCEPTED_TYPES},
            "description": "The document, as its own media type.",
        }
    },
)
def download_document(
    document_id: uuid.UUID,
    user: CaseWorker,
    session: SessionDep,
    runtime: RuntimeDep,
    now: NowDep,
    audit: AuditDep,
) -> StreamingResponse:
    """The document's sanitised content, verified frame by frame as it streams."""
    return document_download(
        runtime=runtime,
        session=session,
        document_id=document_id,
        patient_id=patient_scope(user),
        now=now,
        audit=audit,
    )


def document_download(
    *,
    runtime: Runtime,
    session: Session,
    document_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    now: datetime,
    audit: AuditContext,
) -> StreamingResponse:
    """A document as an attachment of its own media type, streamed (the read is audited and
    committed before the first byte; ``patient_id`` scopes it, as the API does)."""
    opened = read_document(
        session=session,
        store=runtime.blob_store,
        keys=runtime.key_store,
        document_id=document_id,
        patient_id=patient_id,
        now=now,
        audit=audit,
        with_filename=True,
    )
    document = opened.document
    return StreamingResponse(
        counted(opened.chunks, "document"),
        media_type=document.media_type,
        headers={
            **NO_STORE,
            "Content-Length": str(document.size),
            "Content-Disposition": attachment(opened.filename or "document"),
            "X-Content-Type-Options": "nosniff",
        },
    )


def attachment(filename: str) -> str:
    """A Content-Disposition of an attachment: an ASCII fallback and the UTF-8 name (RFC 6266)."""
    fallback = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\;%' else "_" for ch in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def upload_kind(value: str | None) -> DocumentKind:
    """The kind of an uploaded document: record or invoice (InvalidDocument otherwise)."""
    if value not in {kind.value for kind in UPLOAD_KINDS}:
        raise InvalidDocument("`kind` must be `record` or `invoice`")
    return DocumentKind(value)


async def stream_into_case(
    body: AsyncIterator[bytes],
    *,
    runtime: Runtime,
    session: Session,
    case_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    kind: DocumentKind,
    filename: str | None,
    now: datetime,
    audit: AuditContext,
) -> Document:
    """Store an upload as it arrives: ``body`` flows through the bounded bridge of
    :mod:`api.uploads` into ``store_document`` (no transaction is held while it arrives)."""
    await run_in_threadpool(session.commit)
    return await store_streamed(
        body,
        limits=runtime.intake_limits,
        store=lambda source: _store(
            source,
            runtime=runtime,
            session=session,
            case_id=case_id,
            patient_id=patient_id,
            kind=kind,
            filename=safe_upload_name(filename),
            now=now,
            audit=audit,
        ),
    )


def _store(
    source: BinaryIO,
    *,
    runtime: Runtime,
    session: Session,
    case_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    kind: DocumentKind,
    filename: str,
    now: datetime,
    audit: AuditContext,
) -> Document:
    return store_document(
        session=session,
        store=runtime.blob_store,
        keys=runtime.key_store,
        case_id=case_id,
        kind=kind,
        filename=filename,
        source=source,
        limits=runtime.intake_limits,
        spool_dir=runtime.spool_dir,
        frame_size=runtime.frame_size,
        now=now,
        audit=audit,
        patient_id=patient_id,
    )
