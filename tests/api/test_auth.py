"""/auth over HTTP: sign-in, throttling, token lifetimes, refresh, logout, registration."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from tests.apiharness import ApiHarness
from tests.factories import PATIENT_EMAIL
from vault.accounts.models import AuthToken, Role, User
from vault.patients.models import Patient

PROBLEMS = "https://medvault.invalid/problems/"
PASSWORD = "a long enough passphrase"


def problem(response: Any) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    slug: str = response.json()["type"].removeprefix(PROBLEMS)
    return slug


def from_address(api: ApiHarness, address: str) -> TestClient:
    """A client for the same application, calling from ``address``."""
    return TestClient(api.client.app, client=(address, 50000))


def sign_in(client: TestClient, login: str, password: str) -> Any:
    return client.post("/auth/token", data={"username": login, "password": password})


def stored(api: ApiHarness, table: type) -> int:
    with api.session() as session:
        return session.exec(select(func.count()).select_from(table)).one()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- sign-in ---


def test_sign_in_answers_tokens_and_me(api: ApiHarness) -> None:
    user = api.user(Role.COORDINATOR)

    response = sign_in(api.client, user.login.upper(), user.password)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert body["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    me = api.client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json() == {"id": str(user.id), "role": "coordinator"}


@pytest.mark.parametrize("known", [True, False])
def test_wrong_password_and_unknown_login_answer_alike(api: ApiHarness, known: bool) -> None:
    user = api.user(Role.ANALYST)
    login = user.login if known else "nobody@example.org"

    response = sign_in(api.client, login, "wrong password!")

    assert response.status_code == 401
    assert problem(response) == "invalid-credentials"
    assert response.json()["detail"] == "wrong login or password"


def test_missing_form_fields_are_refused(api: ApiHarness) -> None:
    response = api.client.post("/auth/token", data={"username": "x"})
    assert response.status_code == 422
    assert problem(response) == "invalid-request"


def test_access_token_expires_with_the_clock(api: ApiHarness) -> None:
    user = api.user(Role.ADMIN)
    api.clock.advance(minutes=15, seconds=-1)
    assert api.client.get("/auth/me", headers=user.headers).status_code == 200

    api.clock.advance(seconds=1)
    response = api.client.get("/auth/me", headers=user.headers)

    assert response.status_code == 401
    assert problem(response) == "not-authenticated"


def test_me_needs_a_valid_token(api: ApiHarness) -> None:
    for headers in ({}, bearer("made-up"), {"Authorization": "Basic eDp5"}):
        response = api.client.get("/auth/me", headers=headers)
        assert response.status_code == 401
        assert problem(response) == "not-authenticated"


# --- throttling ---


def fail_from(api: ApiHarness, address: str, login: str) -> None:
    response = sign_in(from_address(api, address), login, "wrong password!")
    assert response.status_code == 401, response.text


@pytest.mark.parametrize("known", [True, False])
def test_failures_slow_then_lock_an_account(api: ApiHarness, known: bool) -> None:
    user = api.user(Role.COORDINATOR)
    login = user.login if known else "nobody@example.org"
    for index in range(5):  # from five addresses: the account's own count slows it
        fail_from(api, f"198.51.{index}.1", login)

    slowed = sign_in(from_address(api, "203.0.113.1"), login, user.password)
    assert slowed.status_code == 429
    assert problem(slowed) == "too-many-attempts"
    assert slowed.headers["retry-after"] == "2"

    for index, wait in enumerate((2, 4, 8, 16, 32)):
        api.clock.advance(seconds=wait)
        fail_from(api, f"198.51.{10 + index}.1", login)
    locked = sign_in(from_address(api, "203.0.113.1"), login, user.password)
    assert locked.status_code == 429
    assert problem(locked) == "login-locked"
    assert locked.headers["retry-after"] == str(15 * 60)

    api.clock.advance(minutes=15)
    after = sign_in(from_address(api, "203.0.113.1"), login, user.password)
    assert after.status_code == (200 if known else 401)


def test_failures_slow_a_client_address(api: ApiHarness) -> None:
    user = api.user(Role.COORDINATOR)
    for index in range(5):  # five different logins from one network
        fail_from(api, "192.0.2.1", f"guess-{index}@example.org")

    same_network = sign_in(from_address(api, "192.0.77.7"), user.login, user.password)
    elsewhere = sign_in(from_address(api, "203.0.113.9"), user.login, user.password)

    assert same_network.status_code == 429  # addresses are counted anonymised (a.b.0.0)
    assert problem(same_network) == "too-many-attempts"
    assert elsewhere.status_code == 200


# --- refresh and logout ---


def tokens(api: ApiHarness, role: Role = Role.ADMIN) -> dict[str, Any]:
    user = api.user(role)
    response = sign_in(api.client, user.login, user.password)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def refresh(api: ApiHarness, token: str) -> Any:
    return api.client.post("/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_and_reuse_revokes_everything(api: ApiHarness) -> None:
    first = tokens(api)

    rotated = refresh(api, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert api.client.get("/auth/me", headers=bearer(second["access_token"])).status_code == 200

    reused = refresh(api, first["refresh_token"])
    assert reused.status_code == 401
    assert problem(reused) == "not-authenticated"
    assert api.client.get("/auth/me", headers=bearer(second["access_token"])).status_code == 401
    assert refresh(api, second["refresh_token"]).status_code == 401


@pytest.mark.parametrize(
    "body", [{}, {"refresh_token": ""}, {"refresh_token": "x" * 201}, {"token": "x"}]
)
def test_refresh_refuses_malformed_bodies(api: ApiHarness, body: dict[str, str]) -> None:
    response = api.client.post("/auth/refresh", json=body)
    assert response.status_code == 422
    assert problem(response) == "invalid-request"


def test_refresh_token_expires_after_twelve_hours(api: ApiHarness) -> None:
    first = tokens(api)
    api.clock.advance(hours=12)
    response = refresh(api, first["refresh_token"])
    assert response.status_code == 401
    assert problem(response) == "not-authenticated"


def test_logout_revokes_access_and_refresh(api: ApiHarness) -> None:
    pair = tokens(api)

    response = api.client.post("/auth/logout", headers=bearer(pair["access_token"]))

    assert response.status_code == 204
    assert api.client.get("/auth/me", headers=bearer(pair["access_token"])).status_code == 401
    assert refresh(api, pair["refresh_token"]).status_code == 401
    again = api.client.post("/auth/logout", headers=bearer(pair["access_token"]))
    assert again.status_code == 401
    assert problem(again) == "not-authenticated"


def test_logout_needs_a_token(api: ApiHarness) -> None:
    response = api.client.post("/auth/logout")
    assert response.status_code == 401
    assert problem(response) == "not-authenticated"


def test_disabled_user_is_refused_at_once(api: ApiHarness) -> None:
    admin = api.user(Role.ADMIN)
    user = api.user(Role.COORDINATOR)

    disabled = api.client.post(f"/admin/users/{user.id}/disable", headers=admin.headers)

    assert disabled.status_code == 204
    response = api.client.get("/auth/me", headers=user.headers)
    assert response.status_code == 401
    assert problem(response) == "not-authenticated"
    assert sign_in(api.client, user.login, user.password).status_code == 401


# --- registration ---


def registration(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": PATIENT_EMAIL,
        "password": PASSWORD,
        "name": "Erika Mustermann",
        "birth_date": "1964-08-12",
        "phone": "+49 30 1234567",
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def code_in(api: ApiHarness) -> str:
    return api.notifier.messages[-1].body.split("\n\n")[2].strip()


def test_registration_confirmation_then_sign_in(api: ApiHarness) -> None:
    response = api.client.post("/auth/register", json=registration())

    assert response.status_code == 202
    (mail,) = api.notifier.messages
    assert mail.to == PATIENT_EMAIL
    unconfirmed = sign_in(api.client, PATIENT_EMAIL, PASSWORD)
    assert unconfirmed.status_code == 403
    assert problem(unconfirmed) == "email-not-confirmed"

    confirmed = api.client.post("/auth/confirm", json={"token": code_in(api)})

    assert confirmed.status_code == 204
    signed_in = sign_in(api.client, PATIENT_EMAIL, PASSWORD)
    assert signed_in.status_code == 200
    me = api.client.get("/auth/me", headers=bearer(signed_in.json()["access_token"]))
    assert me.json()["role"] == "patient"
    reused = api.client.post("/auth/confirm", json={"token": code_in(api)})
    assert reused.status_code == 400
    assert problem(reused) == "invalid-one-time-token"


def test_registration_is_no_account_oracle(api: ApiHarness) -> None:
    first = api.client.post("/auth/register", json=registration())
    second = api.client.post(
        "/auth/register", json=registration(email=PATIENT_EMAIL.upper(), password=PASSWORD + "!")
    )

    assert (first.status_code, first.json()) == (second.status_code, second.json())
    assert stored(api, User) == stored(api, Patient) == 1
    assert len(api.notifier.messages) == 2
    assert "You already have an account" in api.notifier.messages[1].body


@pytest.mark.parametrize(
    ("overrides", "slug"),
    [
        ({"email": "not-an-address"}, "invalid-request"),
        ({"email": None}, "invalid-request"),
        ({"password": "short"}, "weak-password"),
        ({"password": "x" * 1025}, "weak-password"),
        ({"name": ""}, "invalid-request"),
        ({"birth_date": "2999-01-01"}, "invalid-request"),
        ({"birth_date": "yesterday"}, "invalid-request"),
        ({"role": "admin"}, "invalid-request"),
    ],
)
def test_registration_refuses_bad_input_and_stores_nothing(
    api: ApiHarness, overrides: dict[str, Any], slug: str
) -> None:
    response = api.client.post("/auth/register", json=registration(**overrides))

    assert response.status_code == 422
    assert problem(response) == slug
    assert stored(api, User) == stored(api, Patient) == 0
    assert api.notifier.messages == []


@pytest.mark.parametrize("body", [{"token": "made-up"}, {"token": ""}, {}])
def test_confirm_refuses_unknown_tokens(api: ApiHarness, body: dict[str, str]) -> None:
    response = api.client.post("/auth/confirm", json=body)
    assert response.status_code in (400, 422)
    assert problem(response) == (
        "invalid-one-time-token" if body.get("token") else "invalid-request"
    )


def test_tokens_are_stored_only_as_digests(api: ApiHarness) -> None:
    pair = tokens(api)
    with api.session() as session:
        digests = set(session.exec(select(AuthToken.digest)).all())
    assert pair["access_token"] not in digests
    assert pair["refresh_token"] not in digests
