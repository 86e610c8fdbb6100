"""The `pages` fixture: browsers (each a TestClient with its own cookies) signed in to the
pages of the in-process application of the `api` fixture."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from api.web.session import CSRF_COOKIE, SESSION_COOKIE, form_token
from tests.apiharness import ApiHarness, TestUser

HTML = {"Accept": "text/html"}


@dataclass
class PageBrowser:
    """One browser: its cookies, and forms posted with the CSRF token its pages carry."""

    client: TestClient
    api: ApiHarness

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, headers=HTML, follow_redirects=False, **kwargs)

    def csrf(self) -> str:
        browser = self.client.cookies.get(CSRF_COOKIE)
        if browser is None:  # a first page sets it
            self.get("/signin")
            browser = self.client.cookies.get(CSRF_COOKIE)
        assert browser is not None
        key = self.api.runtime.secrets.csrf_key
        return form_token(key, browser=browser, session=self.client.cookies.get(SESSION_COOKIE))

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> httpx.Response:
        """A form post with this browser's CSRF token (as a page's form sends it)."""
        fields = {"csrf_token": self.csrf(), **(data or {})}
        return self.client.post(path, data=fields, headers=HTML, follow_redirects=False, **kwargs)

    def upload(self, path: str, content: bytes, *, media_type: str) -> httpx.Response:
        """A file sent the way the pages' script sends it: raw body, token in a header."""
        headers = {
            "X-CSRF-Token": self.csrf(),
            "Content-Type": media_type,
            "Accept": "application/json",
        }
        return self.client.post(path, content=content, headers=headers, follow_redirects=False)


@dataclass
class Pages:
    api: ApiHarness

    def browser(self) -> PageBrowser:
        client = TestClient(self.api.client.app, base_url="http://testserver")
        return PageBrowser(client, self.api)

    def signed_in(self, user: TestUser) -> PageBrowser:
        browser = self.browser()
        response = browser.post("/signin", {"login": user.login, "password": user.password})
        assert response.status_code == 303, response.text
        return browser


def csrf_field(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@pytest.fixture
def pages(api: ApiHarness) -> Pages:
    return Pages(api)


@pytest.fixture
def patient(api: ApiHarness) -> TestUser:
    """A patient (record and account)."""
    return api.patient()


@pytest.fixture
def browser(pages: Pages, patient: TestUser) -> PageBrowser:
    """The patient's browser, signed in."""
    return pages.signed_in(patient)
