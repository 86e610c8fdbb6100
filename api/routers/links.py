"""Partner links, no sign-in: the token in the path finds the link, the access code in a form
releases a document. The link page is HTML for browsers and JSON for everything else.

Tokens travel in paths only; the access log and problem ``instance`` use the route template,
so no token is ever written down. Every answer is ``Cache-Control: no-store`` and
``Referrer-Policy: no-referrer``; gone links answer 410 (an HTML page for browsers).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import AwareDatetime, BaseModel

from api.deps import ClientDep, NowDep, RuntimeDep, SessionDep
from api.pages import render_page, wants_html
from vault.audit.models import ActorKind
from vault.audit.service import AuditContext
from vault.documents.models import DocumentKind
from vault.links.service import LinkView, download_from_link, open_link
from vault.partners.models import PartnerKind

router = APIRouter(tags=["partner links"])

PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
GONE: dict[int | str, dict[str, Any]] = {
    410: {"description": "Expired, revoked, used up, locked or deleted for good."}
}


class LinkedDocumentOut(BaseModel):
    id: uuid.UUID
    kind: DocumentKind
    media_type: str
    size: int
    filename: str


class LinkOut(BaseModel):
    transfer_id: uuid.UUID
    partner_kind: PartnerKind
    documents: list[LinkedDocumentOut]
    expires_at: AwareDatetime
    downloads_left: int

    @classmethod
    def of(cls, view: LinkView) -> LinkOut:
        return cls.model_validate(view, from_attributes=True)


def _holder(client: str | None) -> AuditContext:
    # The service records the link's partner as the actor; the caller is only an address here.
    return AuditContext(ActorKind.ANONYMOUS, None, client)


@router.get(
    "/l/{token}",
    response_model=LinkOut,
    responses={200: {"content": {"text/html": {}}}, **GONE},
)
def open_partner_link(
    token: str, request: Request, session: SessionDep, now: NowDep, client: ClientDep
) -> Response:
    """What was sent through this link. Opening it uses no download."""
    view = open_link(session, token=token, now=now, audit=_holder(client))
    if wants_html(request):
        page = render_page("link.html", link=view, token=token)
        return HTMLResponse(page, headers=PRIVATE)
    return JSONResponse(LinkOut.of(view).model_dump(mode="json"), headers=PRIVATE)


@router.post(
    "/l/{token}/documents/{document_id}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The document."},
        403: {"description": "Wrong access code; `attempts_left` says how many remain."},
        **GONE,
    },
)
def download_partner_document(
    token: str,
    document_id: uuid.UUID,
    code: Annotated[str, Form(max_length=64)],
    runtime: RuntimeDep,
    session: SessionDep,
    now: NowDep,
    client: ClientDep,
) -> StreamingResponse:
    """Download one document of the link with its access code; each download counts."""
    released = download_from_link(
        session,
        store=runtime.blob_store,
        keys=runtime.key_store,
        token=token,
        document_id=document_id,
        code=code,
        now=now,
        audit=_holder(client),
    )
    document = released.stream.document
    headers = {
        **PRIVATE,
        "Content-Disposition": f'attachment; filename="{released.filename}"',
        "Content-Length": str(document.size),
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(
        released.stream.chunks, media_type=document.media_type, headers=headers
    )
