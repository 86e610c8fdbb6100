"""The pages everyone starts from: ``/`` (to the signed-in user's home), sign-in and sign-out."""

from __future__ import annotations

from contextlib import suppress
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import Response

from api.routers.auth import MAX_PASSWORD_FIELD
from api.web.context import HOME_OF_ROLE, AnyPage, local_path
from api.web.session import SESSION_COOKIE, PageRoute, cookie, set_cookie
from vault.accounts.service import TokenLifetimes, log_in, logout, user_for_access_token
from vault.errors import EmailNotConfirmed, InvalidCredentials, LoginThrottled, NotAuthenticated

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/")
def start(page: AnyPage) -> Response:
    if page.user is None:
        return page.redirect("/signin")
    return page.redirect(HOME_OF_ROLE[page.user.role])


@router.get("/signin")
def sign_in_form(page: AnyPage, next: str | None = None) -> Response:
    if page.user is not None:
        return page.redirect(local_path(next, HOME_OF_ROLE[page.user.role]))
    return page.render("signin.html", next=local_path(next, ""), error=None)


@router.post("/signin")
def sign_in(
    page: AnyPage,
    login: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_FIELD)],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    hours = page.runtime.settings.page_session_hours
    lifetimes = TokenLifetimes(access=timedelta(hours=hours), refresh=timedelta(hours=hours))
    try:
        pair = log_in(
            page.session,
            lookup_key=page.runtime.secrets.login_lookup_key,
            login=login,
            password=password,
            now=page.now,
            audit=page.audit,
            lifetimes=lifetimes,
        )
    except (InvalidCredentials, LoginThrottled, EmailNotConfirmed) as error:
        response = page.render(
            "signin.html",
            status_code=error.status,
            next=local_path(next, ""),
            error=error,
            login=login,  # kept, so only the password is typed again
        )
        for name, value in (getattr(error, "headers", None) or {}).items():
            response.headers[name] = value  # Retry-After of a throttled sign-in
        return response
    set_cookie(page.request, SESSION_COOKIE, pair.access_token, max_age=hours * 3600)
    user = user_for_access_token(page.session, token=pair.access_token, now=page.now)
    return page.redirect(local_path(next or None, HOME_OF_ROLE[user.role]))


@router.post("/signout")
def sign_out(page: AnyPage) -> Response:
    token = cookie(page.request, SESSION_COOKIE)
    if token is not None:
        # Already expired or revoked: signing out again changes nothing.
        with suppress(NotAuthenticated):
            logout(page.session, access_token=token, now=page.now, audit=page.audit)
    set_cookie(page.request, SESSION_COOKIE, "", max_age=0)
    return page.redirect("/signin")
