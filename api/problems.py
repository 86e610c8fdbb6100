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


# -- the errors in the OpenAPI document
# Every operation answers its errors as problem+json; the document says so, per operation,
# for the statuses it can answer: 400 where there is a body (unparsable); 422 (FastAPI
# declares it as plain JSON: it is a problem); 401 and 403 where a token is required; 404,
# 409 and 410 where the operation names an object (in its path or body: not found, a conflict
# with its state, shredded); 401 and 429 for the sign-in operations (wrong credentials,
# throttled); 503 everywhere (the audit event or the database could not be written).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "additionalProperties": True,
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ERROR_DESCRIPTIONS = {
    400: "The body cannot be parsed as its media type",
    401: "Not signed in, or the token is expired or revoked",
    403: "Not allowed for this caller",
    404: "No such object, or not the caller's",
    409: "Conflicts with the object's state (consent, restriction, hold)",
    410: "Gone: shredded, expired, revoked or used up",
    422: "The request does not match what this operation accepts",
    429: "Too many attempts: wait Retry-After seconds",
    503: "The database or the audit chain cannot be written; try again",
}


def document_problems(spec: dict[str, Any]) -> dict[str, Any]:
    """Add the problem responses each operation can answer to an OpenAPI document (in place)."""
    spec.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    for path, methods in spec.get("paths", {}).items():
        for operation in methods.values():
            statuses = {503}
            names_an_object = "{" in path or "requestBody" in operation
            if operation.get("parameters") or "requestBody" in operation:
                statuses.add(422)
            if operation.get("security"):
                statuses |= {401, 403}
            if names_an_object:
                statuses |= {404, 409, 410}
            if "requestBody" in operation:
                statuses.add(400)  # a body that cannot be parsed as its media type
            if path.startswith("/auth/"):
                statuses |= {401, 429}  # wrong credentials or codes; throttled
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                declared = responses.setdefault(
                    str(status), {"description": _ERROR_DESCRIPTIONS[status]}
                )
                declared["content"] = {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}
    return spec
