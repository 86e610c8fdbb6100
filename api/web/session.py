"""Browser sessions for the pages: one HttpOnly cookie, CSRF tokens, the language cookie.

The session cookie holds an access token of the accounts service issued for
``page_session_hours`` (sign-out revokes it like any token), so a page session is checked,
audited and revoked exactly as an API session is; it never reaches JavaScript. Cookies are
``SameSite=Lax`` (a partner's link from a mail still opens), ``Secure`` behind TLS.

CSRF: a random ``mv_csrf`` cookie, and in every form a token that is the HMAC of that cookie
and the session under a key derived from the service secret (OWASP's signed double submit).
:class:`PageRoute` checks it on every unsafe request before the handler runs, so no form can
forget it; uploads from script send it as ``X-CSRF-Token``, file forms in their action URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from vault.errors import Forbidden

SESSION_COOKIE = "mv_session"
CSRF_COOKIE = "mv_csrf"
LANGUAGE_COOKIE = "mv_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
LANGUAGE_COOKIE_DAYS = 365


class CsrfRefused(Forbidden):
    slug = "csrf-refused"
    title = "Form expired"


@dataclass(frozen=True)
class Cookie:
    """A cookie a page asked to set (``max_age=0`` deletes it)."""

    name: str
    value: str
    max_age: int

    def apply(self, response: Response, *, secure: bool) -> None:
        response.set_cookie(
            self.name,
            self.value,
            max_age=self.max_age,
            path="/",
            secure=secure,
            httponly=True,
            samesite="lax",
        )


def set_cookie(request: Request, name: str, value: str, *, max_age: int) -> None:
    """Set a cookie on the response of this request, whatever the handler returns."""
    pending: list[Cookie] = request.state.__dict__.setdefault("page_cookies", [])
    pending.append(Cookie(name, value, max_age))
    request.state.__dict__.setdefault("cookie_overrides", {})[name] = value


def cookie(request: Request, name: str) -> str | None:
    """A cookie as this request will have left it (a value set during it counts)."""
    overrides: dict[str, str] = request.state.__dict__.get("cookie_overrides", {})
    value = overrides.get(name, request.cookies.get(name))
    return value or None


def behind_tls(request: Request) -> bool:
    return request.url.scheme == "https"


# --- CSRF ---


def _csrf_key(request: Request) -> bytes:
    key: bytes = request.app.state.runtime.secrets.csrf_key
    return key


def _ensure_csrf_cookie(request: Request) -> str:
    value = cookie(request, CSRF_COOKIE)
    if value is None:
        value = secrets.token_urlsafe(32)
        set_cookie(request, CSRF_COOKIE, value, max_age=LANGUAGE_COOKIE_DAYS * 86400)
    return value


def form_token(key: bytes, *, browser: str, session: str | None) -> str:
    """HMAC of the browser's CSRF cookie and its session cookie (empty before sign-in)."""
    session_digest = hashlib.sha256((session or "").encode()).hexdigest()
    mac = hmac.new(key, f"{browser}|{session_digest}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def csrf_token(request: Request) -> str:
    """The token this browser's forms carry now (bound to its CSRF cookie and its session)."""
    browser = _ensure_csrf_cookie(request)
    return form_token(_csrf_key(request), browser=browser, session=cookie(request, SESSION_COOKIE))


async def check_csrf(request: Request) -> None:
    """Refuse an unsafe request without the token of this browser and session."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site not in (None, "same-origin", "none"):
        raise CsrfRefused("this form was sent from another site")
    if request.cookies.get(CSRF_COOKIE) is None:
        raise CsrfRefused("the form has expired: open the page again and resend it")
    sent = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if sent is None and content_type.startswith(MULTIPART):
        # A file form: its body is a document, streamed into the vault by the handler and never
        # parsed (nor spooled) here, so the token comes in the form's action URL. Harmless
        # there: no Referer leaves the site and the access log records route templates only.
        sent = request.query_params.get(CSRF_FIELD)
    elif sent is None and content_type.startswith(URLENCODED):
        field = (await request.form()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    if sent is None or not hmac.compare_digest(sent.encode(), csrf_token(request).encode()):
        raise CsrfRefused("the form has expired: open the page again and resend it")


class PageRoute(APIRoute):
    """The route class of every page: CSRF is checked before an unsafe request's handler runs,
    and cookies the request asked for are set on the response the handler returns."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            if request.method not in SAFE_METHODS:
                await check_csrf(request)
            response = await handler(request)
            for pending in request.state.__dict__.get("page_cookies", []):
                pending.apply(response, secure=behind_tls(request))
            return response

        return handle
