"""Every error is problem+json (or a page for a browser), never a trace; every response carries
the security headers."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session

from api import deps
from tests.apiharness import ApiHarness
from tests.factories import PATIENT_NAME
from vault.accounts.models import User

PROBLEM = "application/problem+json"


def test_unknown_route_is_a_problem(api: ApiHarness) -> None:
    response = api.client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "https://medvault.invalid/problems/not-found"
    assert body["status"] == 404


def test_wrong_method_is_a_problem(api: ApiHarness) -> None:
    response = api.client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["type"].endswith("/method-not-allowed")


def test_validation_error_names_the_field_never_the_value(api: ApiHarness) -> None:
    response = api.client.post(
        "/auth/register",
        json={"email": "not-an-address", "password": "x", "name": PATIENT_NAME},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/invalid-request")
    assert PATIENT_NAME not in response.text
    assert "not-an-address" not in response.text


def test_unexpected_error_leaves_no_trace(api: ApiHarness) -> None:
    app = api.client.app

    @app.get("/boom")  # type: ignore[attr-defined, untyped-decorator]
    def boom() -> None:
        raise RuntimeError(f"secret detail about {PATIENT_NAME}")

    with TestClient(app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.json()["type"].endswith("/internal-error")
    assert PATIENT_NAME not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text


def test_a_database_with_no_free_connection_is_a_503_to_try_again(api: ApiHarness) -> None:
    app = api.client.app

    @app.get("/pool-exhausted")  # type: ignore[attr-defined, untyped-decorator]
    def pool_exhausted() -> None:
        raise sa.exc.TimeoutError(f"QueuePool limit reached for {PATIENT_NAME}")

    with TestClient(app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        response = client.get("/pool-exhausted")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"].endswith("/database-unavailable")
    assert PATIENT_NAME not in response.text


def test_a_browser_gets_an_html_error_page(api: ApiHarness) -> None:
    response = api.client.get("/no/such/thing", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in response.text


def test_security_headers_on_every_response(api: ApiHarness) -> None:
    for response in (api.client.get("/healthz"), api.client.get("/no/such/thing")):
        headers = response.headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        csp = headers["content-security-policy"]
        assert "script-src 'self';" in csp
        assert "unsafe-inline" not in csp
        assert "http" not in csp  # nothing from another origin
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in headers  # plain HTTP: HSTS would be ignored


def test_hsts_only_behind_tls(api: ApiHarness) -> None:
    with TestClient(api.client.app, base_url="https://testserver") as client:  # type: ignore[arg-type]
        response = client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_openapi_lists_every_operation_with_a_unique_id(api: ApiHarness) -> None:
    spec = api.client.get("/openapi.json").json()
    ids = [
        operation["operationId"]
        for methods in spec["paths"].values()
        for operation in methods.values()
    ]
    assert len(ids) == len(set(ids))
    assert "healthz" in ids


def test_a_connection_lost_while_the_token_is_looked_up_is_a_503(
    api: ApiHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the fault suite (tests/faults): the token lookup's transaction was committed
    even when the lookup failed, and committing a transaction whose connection was lost raised
    PendingRollbackError over the real error: a 500 instead of a 503 to try again."""
    patient = api.patient()

    def connection_lost(session: Session, *, token: str, now: datetime) -> User:
        connection = session.connection()
        connection.invalidate()  # what SQLAlchemy does when the server goes away mid-query
        raise sa.exc.OperationalError(
            "SELECT", {}, ConnectionResetError(), connection_invalidated=True
        )

    monkeypatch.setattr(deps, "user_for_access_token", connection_lost)
    with TestClient(api.client.app, raise_server_exceptions=False) as client:
        response = client.get("/auth/me", headers=patient.headers)

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("/database-unavailable")
