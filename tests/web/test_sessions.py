"""Page sessions and CSRF: the cookie's attributes, sign-in and sign-out, expiry, refused forms."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.web.session import CSRF_COOKIE, SESSION_COOKIE
from tests.apiharness import ApiHarness
from tests.web.conftest import HTML, PageBrowser, Pages
from vault.accounts.models import Role


def _set_cookies(response_headers: list[str], name: str) -> str:
    return next(value for value in response_headers if value.startswith(f"{name}="))


def test_sign_in_sets_an_httponly_lax_cookie_and_opens_the_roles_home(
    api: ApiHarness, pages: Pages
) -> None:
    coordinator = api.user(Role.COORDINATOR)
    browser = pages.browser()
    response = browser.post(
        "/signin", {"login": coordinator.login, "password": coordinator.password}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    cookie = _set_cookies(response.headers.get_list("set-cookie"), SESSION_COOKIE)
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie
    assert "Max-Age=28800" in cookie  # page_session_hours = 8
    assert browser.get("/").headers["location"] == "/console"


def test_behind_tls_the_cookies_are_secure(api: ApiHarness) -> None:
    analyst = api.user(Role.ANALYST)
    client = TestClient(api.client.app, base_url="https://medvault.example")
    first = client.get("/signin", headers=HTML)
    assert "Secure" in _set_cookies(first.headers.get_list("set-cookie"), CSRF_COOKIE)
    browser = PageBrowser(client, api)
    response = browser.post("/signin", {"login": analyst.login, "password": analyst.password})
    cookie = _set_cookies(response.headers.get_list("set-cookie"), SESSION_COOKIE)
    assert "Secure" in cookie
    assert "HttpOnly" in cookie


def test_a_form_without_its_token_is_refused_and_changes_nothing(
    api: ApiHarness, pages: Pages
) -> None:
    admin = api.user(Role.ADMIN)
    browser = pages.signed_in(admin)
    for fields in ({}, {"csrf_token": "forged"}, {"csrf_token": pages.browser().csrf()}):
        response = browser.client.post(
            "/signout", data=fields, headers=HTML, follow_redirects=False
        )
        assert response.status_code == 403
        assert "Form expired" in response.text
    assert browser.get("/").headers["location"] == "/privacy"  # still signed in


def test_a_form_sent_from_another_site_is_refused(api: ApiHarness, pages: Pages) -> None:
    browser = pages.signed_in(api.user(Role.ADMIN))
    fields = {"csrf_token": browser.csrf()}
    response = browser.client.post(
        "/signout",
        data=fields,
        headers={**HTML, "Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert browser.post("/signout").status_code == 303  # the same token, from this site


def test_sign_out_revokes_the_session_token(api: ApiHarness, pages: Pages) -> None:
    browser = pages.signed_in(api.user(Role.COORDINATOR))
    token = browser.client.cookies.get(SESSION_COOKIE)
    assert browser.post("/signout").headers["location"] == "/signin"
    replay = pages.browser()
    replay.client.cookies.set(SESSION_COOKIE, token or "")
    response = replay.get("/")
    assert response.headers["location"] == "/signin"  # the old cookie no longer signs anyone in
    assert (
        api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )


def test_a_session_ends_after_page_session_hours(api: ApiHarness, pages: Pages) -> None:
    browser = pages.signed_in(api.user(Role.ANALYST))
    api.clock.advance(hours=7, minutes=59)
    assert browser.get("/").headers["location"] == "/analysis"
    api.clock.advance(minutes=2)
    assert browser.get("/").headers["location"] == "/signin"


def test_after_sign_in_the_browser_returns_only_to_a_page_of_this_site(
    api: ApiHarness, pages: Pages
) -> None:
    coordinator = api.user(Role.COORDINATOR)
    for target, expected in (
        ("/console?status=open", "/console?status=open"),
        ("https://evil.example/", "/console"),
        ("//evil.example/", "/console"),
    ):
        browser = pages.browser()
        response = browser.post(
            "/signin",
            {"login": coordinator.login, "password": coordinator.password, "next": target},
        )
        assert response.headers["location"] == expected


def test_a_wrong_password_shows_the_form_again_with_the_login_kept(
    api: ApiHarness, pages: Pages
) -> None:
    coordinator = api.user(Role.COORDINATOR)
    browser = pages.browser()
    response = browser.post("/signin", {"login": coordinator.login, "password": "wrong"})
    assert response.status_code == 401
    assert 'role="alert"' in response.text
    assert coordinator.login in response.text
    assert SESSION_COOKIE not in browser.client.cookies


def test_pages_follow_the_browsers_language_and_the_readers_choice(pages: Pages) -> None:
    browser = pages.browser()
    german = browser.client.get("/signin", headers={**HTML, "Accept-Language": "de-DE"})
    assert '<html lang="de">' in german.text
    assert "Anmelden" in german.text
    chosen = browser.client.get("/signin?lang=en", headers={**HTML, "Accept-Language": "de-DE"})
    assert '<html lang="en">' in chosen.text
    later = browser.client.get("/signin", headers={**HTML, "Accept-Language": "de-DE"})
    assert '<html lang="en">' in later.text  # the choice is remembered in a cookie
