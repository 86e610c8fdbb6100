"""Every error leaves the service as RFC 9457 problem+json (or a plain HTML page for a browser on
the partner link pages); no stack trace ever does.

Messages come from the error classes of ``vault.errors``, which are written to be safe to show.
Validation errors list where the input was wrong, never the input itself (it may be personal data).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.pages import render_page, wants_html
from api.web.i18n import Translator, language_for
from vault.errors import VaultError

PROBLEM_BASE = "https://medvault.invalid/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("medvault.api")
DATABASE_RETRY_AFTER_SECONDS = 5

_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("not-authenticated", "Not authenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("request-too-large", "Request too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


def problem_response(
    request: Request,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": problem_type(slug), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.scope.get("route_path_template") or _route_template(request)
    body.update(extra or {})
    if wants_html(request):
        language = language_for(
            request.cookies.get("mv_lang"), request.headers.get("accept-language")
        )
        html = render_page("problem.html", problem=body, t=Translator(language))
        return HTMLResponse(html, status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _route_template(request: Request) -> str:
    # The route's template, never the raw path: link tokens travel in paths.
    route = request.scope.get("route")
    return str(getattr(route, "path", "")) or "/"


async def _vault_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, VaultError)
    return problem_response(
        request,
        status=error.status,
        slug=error.slug,
        title=error.title,
        detail=str(error) or None,
        extra=getattr(error, "extra", None),
        headers=getattr(error, "headers", None),
    )


async def _validation_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    invalid = [
        {"location": [str(part) for part in item.get("loc", ())], "message": item.get("msg", "")}
        for item in error.errors()
    ]
    return problem_response(
        request,
        status=422,
        slug="invalid-request",
        title="Invalid request",
        detail="the request does not match what this operation accepts",
        extra={"errors": invalid},
    )


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(error.status_code, ("http-error", "Request failed"))
    detail = error.detail if isinstance(error.detail, str) and error.status_code != 404 else None
    return problem_response(
        request,
        status=error.status_code,
        slug=slug,
        title=title,
        detail=detail,
        headers=getattr(error, "headers", None),
    )


async def _database_unavailable(request: Request, error: Exception) -> Response:
    # A pool with no free connection within its timeout, a server that does not answer or a
    # SQLite file locked past busy_timeout: the request did nothing, and may be tried again.
    log.warning("database unavailable (%s) on %s", type(error).__name__, _route_template(request))
    return problem_response(
        request,
        status=503,
        slug="database-unavailable",
        title="Database unavailable",
        detail="the database is busy or cannot be reached; try again shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


async def _unexpected_error(request: Request, error: Exception) -> Response:
    # The class name only: a message or traceback may carry data from the request.
    log.error("unhandled error %s on %s", type(error).__name__, _route_template(request))
    return problem_response(request, status=500, slug="internal-error", title="Internal error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(VaultError, _vault_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa.exc.TimeoutError, _database_unavailable)
    app.add_exception_handler(sa.exc.OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
