"""Partner links, no sign-in: the token in the path finds the link, the access code in a form
releases a document, or all of them as one streamed ZIP (one use of the link, see
``vault.links.service``). The link page is HTML for browsers (English or German: ``?lang=``,
the language cookie, the browser's choice) and JSON for everything else; a browser that sends
a wrong code gets the page again with the attempts left.

Tokens travel in paths only; the access log and problem ``instance`` use the route template,
so no token is ever written down. Every answer is ``Cache-Control: no-store`` and
``Referrer-Policy: no-referrer``; gone links answer 410 (an HTML page for browsers).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import AwareDatetime, BaseModel
from sqlmodel import Session

from api.deps import ClientDep, NowDep, RuntimeDep, SessionDep
from api.metrics import count_link_download, counted
from api.pages import render_page, wants_html
from api.web.i18n import LANGUAGES, Translator, language_for
from api.web.session import LANGUAGE_COOKIE, LANGUAGE_COOKIE_DAYS, Cookie, behind_tls
from infra.wiring import Runtime
from vault.audit.models import ActorKind
from vault.audit.service import AuditContext
from vault.documents.models import DocumentKind
from vault.errors import AccessCodeWrong, VaultError
from vault.links.service import (
    LinkView,
    download_archive_from_link,
    download_from_link,
    open_link,
)
from vault.partners.models import PartnerKind

router = APIRouter(tags=["partner links"])

PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
AccessCode = Annotated[str, Form(min_length=1, max_length=64)]
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


@dataclass(frozen=True)
class LinkCall:
    """What every link route works with: the request, the runtime, a database session, the
    time, and the holder of the link (known only by an anonymised address)."""

    request: Request
    runtime: Runtime
    session: Session
    now: datetime
    holder: AuditContext


def _link_call(
    request: Request, runtime: RuntimeDep, session: SessionDep, now: NowDep, client: ClientDep
) -> LinkCall:
    return LinkCall(request, runtime, session, now, _holder(client))


LinkCallDep = Annotated[LinkCall, Depends(_link_call)]


def _language(request: Request) -> str:
    """The page's language: ``?lang=`` (kept in the language cookie, which the 410 pages read
    too), else the cookie, else the browser's."""
    return language_for(
        request.query_params.get("lang") or request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
    )


def _link_page(call: LinkCall, token: str, *, wrong: AccessCodeWrong | None = None) -> HTMLResponse:
    """The link's page (opening it uses no download), with a wrong code's message if any."""
    view = open_link(call.session, token=token, now=call.now, audit=call.holder)
    request = call.request
    t = Translator(_language(request))
    error = None if wrong is None else t("link.code_wrong", attempts=wrong.extra["attempts_left"])
    page = render_page(
        "link.html",
        link=view,
        token=token,
        t=t,
        organisation=call.runtime.settings.organisation_name,
        languages=LANGUAGES,
        error=error,
        path=request.url.path,
    )
    status_code = 200 if wrong is None else wrong.status
    response = HTMLResponse(page, status_code=status_code, headers=PRIVATE)
    if request.query_params.get("lang") == t.language:
        chosen = Cookie(LANGUAGE_COOKIE, t.language, max_age=LANGUAGE_COOKIE_DAYS * 86400)
        chosen.apply(response, secure=behind_tls(request))
    return response


@router.get(
    "/l/{token}",
    response_model=LinkOut,
    responses={200: {"content": {"text/html": {}}}, **GONE},
)
def open_partner_link(token: str, call: LinkCallDep) -> Response:
    """What was sent through this link. Opening it uses no download."""
    if wants_html(call.request):
        return _link_page(call, token)
    view = open_link(call.session, token=token, now=call.now, audit=call.holder)
    return JSONResponse(LinkOut.of(view).model_dump(mode="json"), headers=PRIVATE)


def _released(
    call: LinkCall,
    token: str,
    release: Callable[[], StreamingResponse],
    *,
    kind: Literal["document", "archive"],
) -> Response:
    """The download ``release`` answers; for a wrong code, a browser gets the link page again
    saying so (403), anything else the problem. A link that has just locked answers 410.
    Each attempt is counted (``medvault_link_downloads``) as released or refused."""
    try:
        response = release()
    except AccessCodeWrong as wrong:
        count_link_download(kind, ok=False)
        if not wants_html(call.request):
            raise
        return _link_page(call, token, wrong=wrong)
    except VaultError:
        count_link_download(kind, ok=False)
        raise
    count_link_download(kind, ok=True)
    return response


WITH_CODE: dict[int | str, dict[str, Any]] = {
    403: {"description": "Wrong access code; `attempts_left` says how many remain."},
    **GONE,
}


@router.post(
    "/l/{token}/documents/{document_id}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The document."},
        **WITH_CODE,
    },
)
def download_partner_document(
    token: str,
    document_id: uuid.UUID,
    code: AccessCode,
    call: LinkCallDep,
) -> Response:
    """Download one document of the link with its access code; each download counts."""

    def release() -> StreamingResponse:
        released = download_from_link(
            call.session,
            store=call.runtime.blob_store,
            keys=call.runtime.key_store,
            token=token,
            document_id=document_id,
            code=code,
            now=call.now,
            audit=call.holder,
        )
        document = released.stream.document
        headers = {
            **PRIVATE,
            "Content-Disposition": f'attachment; filename="{released.filename}"',
            "Content-Length": str(document.size),
            "X-Content-Type-Options": "nosniff",
        }
        return StreamingResponse(
            counted(released.stream.chunks, "link_document"),
            media_type=document.media_type,
            headers=headers,
        )

    return _released(call, token, release, kind="document")


@router.post(
    "/l/{token}/archive",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "Every document, as one ZIP."},
        **WITH_CODE,
    },
)
def download_partner_archive(token: str, code: AccessCode, call: LinkCallDep) -> Response:
    """Download every document of the link as one ZIP, streamed, with the access code: it
    uses one download of the link, and each document in it is recorded as downloaded."""

    def release() -> StreamingResponse:
        archive = download_archive_from_link(
            call.session,
            store=call.runtime.blob_store,
            keys=call.runtime.key_store,
            token=token,
            code=code,
            now=call.now,
            audit=call.holder,
        )
        headers = {
            **PRIVATE,
            "Content-Disposition": f'attachment; filename="{archive.filename}"',
            "X-Content-Type-Options": "nosniff",
        }
        return StreamingResponse(
            counted(archive.chunks, "link_archive"), media_type="application/zip", headers=headers
        )

    return _released(call, token, release, kind="archive")
