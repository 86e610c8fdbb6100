"""Who may open which page: every page route against every role (and nobody signed in).

``PAGE_ACCESS`` lists each page route with the roles it serves; a route missing from it fails
the test. A caller outside those roles must get the sign-in redirect (nobody signed in) or a
403 page, whatever the path's ids; a caller inside must get past the role check.
"""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.routing import APIRoute

from api.app import PAGE_ROUTERS
from api.security_headers import STRICT_CSP
from tests.apiharness import ApiHarness
from tests.web.conftest import PageBrowser, Pages
from vault.accounts.models import Role

EVERYONE = frozenset({None, *Role})
PATIENT = frozenset({Role.PATIENT})
COORDINATOR = frozenset({Role.COORDINATOR})
ANALYST = frozenset({Role.ANALYST})
OFFICER = frozenset({Role.ADMIN})

PAGE_ACCESS: dict[tuple[str, str], frozenset[Role | None]] = {
    # --- home (api/web/home.py) ---
    ("GET", "/"): EVERYONE,
    ("GET", "/signin"): EVERYONE,
    ("POST", "/signin"): EVERYONE,
    ("POST", "/signout"): EVERYONE,
    # --- patient portal (api/web/patient.py) ---
    ("GET", "/register"): EVERYONE,
    ("POST", "/register"): EVERYONE,
    ("GET", "/confirm"): EVERYONE,
    ("POST", "/confirm"): EVERYONE,
    ("GET", "/accept-invitation"): EVERYONE,
    ("POST", "/accept-invitation"): EVERYONE,
    ("GET", "/portal"): PATIENT,
    ("GET", "/portal/cases/new"): PATIENT,
    ("POST", "/portal/cases/new"): PATIENT,
    ("GET", "/portal/cases/{case_id}"): PATIENT,
    ("GET", "/portal/documents/{document_id}"): PATIENT,
    ("POST", "/portal/cases/{case_id}/files/{filename}"): PATIENT,
    ("POST", "/portal/cases/{case_id}/documents"): PATIENT,
    ("POST", "/portal/cases/{case_id}/consents"): PATIENT,
    ("POST", "/portal/cases/{case_id}/consents/{consent_id}/withdraw"): PATIENT,
    ("GET", "/portal/cases/{case_id}/survey"): PATIENT,
    ("POST", "/portal/cases/{case_id}/survey"): PATIENT,
    ("GET", "/portal/disclosures"): PATIENT,
    # --- patient rights (api/web/rights.py) ---
    ("GET", "/portal/rights"): PATIENT,
    ("POST", "/portal/rights/exports"): PATIENT,
    ("GET", "/portal/rights/exports/{export_id}"): PATIENT,
    ("GET", "/portal/rights/exports/{export_id}/status"): PATIENT,
    ("POST", "/portal/rights/exports/{export_id}/download"): PATIENT,
    ("GET", "/portal/rights/profile"): PATIENT,
    ("POST", "/portal/rights/profile"): PATIENT,
    ("POST", "/portal/rights/restriction"): PATIENT,
    ("POST", "/portal/rights/qa-consent/withdraw"): PATIENT,
    ("POST", "/portal/rights/objections/qa"): PATIENT,
    ("POST", "/portal/rights/objections/legitimate-interests"): PATIENT,
    ("GET", "/portal/rights/erasure"): PATIENT,
    ("POST", "/portal/rights/erasure"): PATIENT,
    ("GET", "/erased"): EVERYONE,
    # --- coordinator console (api/web/console.py) ---
    ("GET", "/console"): COORDINATOR,
    ("GET", "/console/cases/{case_id}"): COORDINATOR,
    ("POST", "/console/cases/{case_id}/outcome"): COORDINATOR,
    ("POST", "/console/cases/{case_id}/complete"): COORDINATOR,
    ("POST", "/console/cases/{case_id}/transfers"): COORDINATOR,
    ("POST", "/console/transfers/{transfer_id}/revoke"): COORDINATOR,
    # --- analyst (api/web/analysis.py) ---
    ("GET", "/analysis"): ANALYST,
    ("POST", "/analysis/extracts"): ANALYST,
    ("GET", "/analysis/extracts/{extract_id}"): ANALYST,
    ("GET", "/analysis/extracts/{extract_id}/status"): ANALYST,
    ("GET", "/analysis/extracts/{extract_id}/download"): ANALYST,
    # --- privacy officer (api/web/privacy.py) ---
    ("GET", "/privacy"): OFFICER,
    ("GET", "/privacy/requests"): OFFICER,
    ("GET", "/privacy/requests/{request_id}"): OFFICER,
    ("GET", "/privacy/users"): OFFICER,
    ("POST", "/privacy/users"): OFFICER,
    ("POST", "/privacy/users/{user_id}/disable"): OFFICER,
    ("GET", "/privacy/partners"): OFFICER,
    ("POST", "/privacy/partners"): OFFICER,
    ("POST", "/privacy/partners/{partner_id}"): OFFICER,
    ("POST", "/privacy/partners/{partner_id}/disable"): OFFICER,
    ("GET", "/privacy/audit"): OFFICER,
    ("POST", "/privacy/audit/verify"): OFFICER,
    ("POST", "/privacy/audit/checkpoint"): OFFICER,
    ("GET", "/privacy/retention"): OFFICER,
    ("POST", "/privacy/cases/{case_id}/legal-hold"): OFFICER,
    ("POST", "/privacy/cases/{case_id}/legal-hold/lift"): OFFICER,
}


def page_routes() -> list[tuple[str, str]]:
    found = []
    for router in PAGE_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            methods = sorted(route.methods or ())
            found += [(method, route.path) for method in methods if method != "HEAD"]
    return found


def test_every_page_route_is_classified() -> None:
    assert sorted(page_routes()) == sorted(PAGE_ACCESS)


@pytest.fixture
def browsers(api: ApiHarness, pages: Pages) -> dict[Role | None, PageBrowser]:
    found: dict[Role | None, PageBrowser] = {None: pages.browser()}
    found[Role.PATIENT] = pages.signed_in(api.patient())
    for role in (Role.COORDINATOR, Role.ANALYST, Role.ADMIN):
        found[role] = pages.signed_in(api.user(role))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _match: str(uuid.uuid4()), path)


def _outcome(
    role: Role | None, allowed: frozenset[Role | None], status: int, to_sign_in: bool
) -> str:
    if role in allowed:
        return "" if status != 403 and not to_sign_in else f"refused ({status})"
    if role is None:
        return "" if to_sign_in else f"not sent to sign in ({status})"
    return "" if status == 403 else f"not refused ({status})"


def test_role_checks(browsers: dict[Role | None, PageBrowser]) -> None:
    """One pass over every page and caller (signing five users in once, not per page); every
    answer carries the strict Content-Security-Policy."""
    wrong = []
    for (method, path), allowed in sorted(PAGE_ACCESS.items()):
        for role, browser in browsers.items():
            url = _concrete(path)
            response = browser.get(url) if method == "GET" else browser.post(url)
            location = response.headers.get("location", "")
            to_sign_in = response.status_code == 303 and location.startswith("/signin?")
            problem = _outcome(role, allowed, response.status_code, to_sign_in)
            if response.headers.get("content-security-policy") != STRICT_CSP:
                problem += " without the strict CSP"
            if problem:
                wrong.append(f"{method} {path} as {role}: {problem}")
            elif role is not None and role not in allowed:
                assert "text/html" in response.headers["content-type"]
    assert not wrong, "\n".join(wrong)
