"""What every page handler gets: :class:`Page` (who is signed in, their language, the database
session, the time, the audit context) and its ``render`` and ``redirect``.

Handlers declare the role they serve with ``PatientPage``, ``CoordinatorPage``, ``AnalystPage``
or ``OfficerPage`` (the admin role is the privacy officer); ``AnyPage`` serves everyone. Nobody
signed in is sent to the sign-in page (and back afterwards); a signed-in user of another role
gets a 403 page.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from api.deps import ClientDep, NowDep, RuntimeDep, SessionDep, user_of_token
from api.pages import render_page
from api.routers.cases import own_patient_id
from api.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, Translator, language_for
from api.web.session import LANGUAGE_COOKIE, SESSION_COOKIE, cookie, csrf_token, set_cookie
from infra.wiring import Runtime
from vault.accounts.models import Role, User
from vault.audit.models import ActorKind
from vault.audit.service import AuditContext
from vault.errors import Forbidden, NotAuthenticated, VaultError

HOME_OF_ROLE = {
    Role.PATIENT: "/portal",
    Role.COORDINATOR: "/console",
    Role.ANALYST: "/analysis",
    Role.ADMIN: "/privacy",
}
PLAIN_QUERY_VALUE = re.compile(r"[A-Za-z0-9_-]{1,40}")


class SignInRequired(NotAuthenticated):
    """Raised by a page when nobody is signed in: answered with a redirect to the sign-in page."""


@dataclass
class Page:
    request: Request
    runtime: Runtime
    session: Session
    now: datetime
    user: User | None
    t: Translator
    audit: AuditContext

    @property
    def language(self) -> str:
        return self.t.language

    def render(self, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        """A page from ``api/templates/web``; the layout gets the user, texts and CSRF token."""
        html = render_page(
            f"web/{template}",
            page=self,
            t=self.t,
            user=self.user,
            home=HOME_OF_ROLE.get(self.user.role) if self.user else None,
            csrf_token=csrf_token(self.request),
            languages=LANGUAGES,
            path=self.request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def language_url(self, language: str) -> str:
        """This page in another language, keeping its plain query values (a notice's key, a
        filter); anything else a URL carried is not echoed into the page."""
        query = [
            (key, value)
            for key, value in self.request.query_params.multi_items()
            if key != "lang" and PLAIN_QUERY_VALUE.fullmatch(value)
        ]
        return f"{self.request.url.path}?{urlencode([*query, ('lang', language)])}"

    def redirect(self, url: str) -> RedirectResponse:
        """See other: after a form, the browser loads ``url`` with GET (no resend on reload)."""
        return RedirectResponse(url, status_code=303)

    @property
    def patient_id(self) -> uuid.UUID:
        """The signed-in patient's record (for ``PatientPage`` handlers only)."""
        assert self.user is not None  # PatientPage lets only a signed-in patient through
        return own_patient_id(self.user)

    @staticmethod
    def notice(done: str | None, known: tuple[str, ...]) -> str | None:
        """The ``?done=`` key of a notice to show, if it is one of ``known``: a query value
        never reaches the page itself."""
        return done if done in known else None

    def error_text(self, error: VaultError) -> str:
        """A refusal in the reader's language: in English the error's own (most precise)
        message, in another language the catalog's text for its kind."""
        key = f"errors.{error.slug}"
        if self.t.language == DEFAULT_LANGUAGE or not self.t.has(key):
            return str(error) or error.title
        return self.t(key)


def _signed_in_user(request: Request, session: Session, now: datetime) -> User | None:
    token = cookie(request, SESSION_COOKIE)
    if token is None:
        return None
    try:
        return user_of_token(session, token=token, now=now)
    except NotAuthenticated:
        set_cookie(request, SESSION_COOKIE, "", max_age=0)  # expired or revoked: forget it
        return None


def page_context(
    request: Request, runtime: RuntimeDep, session: SessionDep, now: NowDep, client: ClientDep
) -> Page:
    user = _signed_in_user(request, session, now)
    language = language_for(
        request.query_params.get("lang") or cookie(request, LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
    )
    if request.query_params.get("lang") == language:
        set_cookie(request, LANGUAGE_COOKIE, language, max_age=365 * 86400)
    audit = AuditContext(
        actor_kind=ActorKind.USER if user else ActorKind.ANONYMOUS,
        actor_id=user.id if user else None,
        client=client,
    )
    return Page(request, runtime, session, now, user, Translator(language), audit)


AnyPage = Annotated[Page, Depends(page_context)]


def signed_in(*roles: Role) -> Callable[[Page], Page]:
    """A dependency: the page of a signed-in user of one of ``roles``."""

    def check(page: AnyPage) -> Page:
        if page.user is None:
            raise SignInRequired("sign in first")
        if page.user.role not in roles:
            raise Forbidden("your role may not open this page")
        return page

    return check


PatientPage = Annotated[Page, Depends(signed_in(Role.PATIENT))]
CoordinatorPage = Annotated[Page, Depends(signed_in(Role.COORDINATOR))]
AnalystPage = Annotated[Page, Depends(signed_in(Role.ANALYST))]
OfficerPage = Annotated[Page, Depends(signed_in(Role.ADMIN))]


def sign_in_redirect(request: Request) -> RedirectResponse:
    """Where a page sends someone who is not signed in: the sign-in page, then back here."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)


def local_path(candidate: str | None, default: str) -> str:
    """``candidate`` if it is a path on this site (never another host), else ``default``."""
    if candidate and candidate.startswith("/") and not candidate.startswith(("//", "/\\")):
        return candidate
    return default
