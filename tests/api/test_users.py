"""/admin/users (the privacy officer) and /patients/invitations (coordinators) over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlmodel import func, select

from tests.apiharness import ApiHarness
from tests.factories import PATIENT_EMAIL
from vault.accounts.models import Role, User
from vault.patients.models import Patient

PROBLEMS = "https://medvault.invalid/problems/"
PASSWORD = "a long enough passphrase"


def problem(response: Any) -> str:
    assert response.headers["content-type"].startswith("application/problem+json")
    slug: str = response.json()["type"].removeprefix(PROBLEMS)
    return slug


def stored(api: ApiHarness, table: type) -> int:
    with api.session() as session:
        return session.exec(select(func.count()).select_from(table)).one()


def new_user(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"login": "k.schmidt", "role": "coordinator", "password": PASSWORD}
    body.update(overrides)
    return body


def test_admin_creates_lists_and_disables_users(api: ApiHarness) -> None:
    admin = api.user(Role.ADMIN)

    created = api.client.post("/admin/users", json=new_user(), headers=admin.headers)

    assert created.status_code == 201
    user_id = created.json()["id"]
    assert created.json()["role"] == "coordinator"
    signed_in = api.client.post("/auth/token", data={"username": "K.Schmidt", "password": PASSWORD})
    assert signed_in.status_code == 200

    listing = api.client.get("/admin/users", headers=admin.headers)
    assert listing.status_code == 200
    rows = {row["id"]: row for row in listing.json()}
    assert set(rows[user_id]) == {"id", "role", "created_at", "disabled"}
    assert rows[user_id]["disabled"] is False
    assert "k.schmidt" not in listing.text.lower()

    disabled = api.client.post(f"/admin/users/{user_id}/disable", headers=admin.headers)
    assert disabled.status_code == 204
    listing = api.client.get("/admin/users", headers=admin.headers)
    assert {row["id"]: row for row in listing.json()}[user_id]["disabled"] is True


@pytest.mark.parametrize(
    ("overrides", "status", "slug"),
    [
        ({"role": "patient"}, 422, "invalid-request"),
        ({"role": "superuser"}, 422, "invalid-request"),
        ({"login": ""}, 422, "invalid-request"),
        ({"login": "   "}, 422, "invalid-login"),
        ({"password": "short"}, 422, "weak-password"),
        ({"extra": "field"}, 422, "invalid-request"),
    ],
)
def test_add_user_refuses_bad_input(
    api: ApiHarness, overrides: dict[str, Any], status: int, slug: str
) -> None:
    admin = api.user(Role.ADMIN)

    response = api.client.post("/admin/users", json=new_user(**overrides), headers=admin.headers)

    assert response.status_code == status
    assert problem(response) == slug
    assert stored(api, User) == 1  # the admin only


def test_add_user_refuses_a_taken_login(api: ApiHarness) -> None:
    admin = api.user(Role.ADMIN)
    api.client.post("/admin/users", json=new_user(), headers=admin.headers)

    response = api.client.post(
        "/admin/users", json=new_user(login=" K.SCHMIDT", role="analyst"), headers=admin.headers
    )

    assert response.status_code == 409
    assert problem(response) == "login-taken"
    assert stored(api, User) == 2


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.ANALYST])
def test_only_admins_manage_users(api: ApiHarness, role: Role) -> None:
    caller = api.user(role)
    target = api.user(Role.ANALYST)
    calls = [
        api.client.post("/admin/users", json=new_user(), headers=caller.headers),
        api.client.get("/admin/users", headers=caller.headers),
        api.client.post(f"/admin/users/{target.id}/disable", headers=caller.headers),
    ]
    assert [(call.status_code, problem(call)) for call in calls] == [(403, "forbidden")] * 3
    anonymous = api.client.get("/admin/users")
    assert anonymous.status_code == 401
    assert problem(anonymous) == "not-authenticated"
    assert stored(api, User) == 2


def test_disabling_an_unknown_user_is_not_found(api: ApiHarness) -> None:
    admin = api.user(Role.ADMIN)
    response = api.client.post(f"/admin/users/{uuid.uuid4()}/disable", headers=admin.headers)
    assert response.status_code == 404
    assert problem(response) == "not-found"


# --- invitations ---


def invitation(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "email": PATIENT_EMAIL,
        "name": "Erika Mustermann",
        "birth_date": "1964-08-12",
    }
    body.update(overrides)
    return body


def code_in(api: ApiHarness) -> str:
    return api.notifier.messages[-1].body.split("\n\n")[2].strip()


def test_invited_patient_chooses_a_password(api: ApiHarness) -> None:
    coordinator = api.user(Role.COORDINATOR)

    invited = api.client.post(
        "/patients/invitations", json=invitation(), headers=coordinator.headers
    )

    assert invited.status_code == 201
    (mail,) = api.notifier.messages
    assert mail.to == PATIENT_EMAIL
    code = code_in(api)
    weak = api.client.post("/auth/accept-invitation", json={"token": code, "password": "short"})
    assert weak.status_code == 422
    assert problem(weak) == "weak-password"

    accepted = api.client.post(
        "/auth/accept-invitation", json={"token": code, "password": PASSWORD}
    )

    assert accepted.status_code == 204
    signed_in = api.client.post(
        "/auth/token", data={"username": PATIENT_EMAIL, "password": PASSWORD}
    )
    assert signed_in.status_code == 200
    with api.session() as session:
        user = session.exec(select(User).where(User.role == Role.PATIENT)).one()
    assert str(user.patient_id) == invited.json()["patient_id"]
    again = api.client.post("/auth/accept-invitation", json={"token": code, "password": PASSWORD})
    assert again.status_code == 400
    assert problem(again) == "invalid-one-time-token"


def test_invitation_code_expires_after_48_hours(api: ApiHarness) -> None:
    coordinator = api.user(Role.COORDINATOR)
    api.client.post("/patients/invitations", json=invitation(), headers=coordinator.headers)
    api.clock.advance(hours=48)

    response = api.client.post(
        "/auth/accept-invitation", json={"token": code_in(api), "password": PASSWORD}
    )

    assert response.status_code == 400
    assert problem(response) == "invalid-one-time-token"


@pytest.mark.parametrize(
    ("overrides", "slug"),
    [
        ({"email": "nope"}, "invalid-request"),
        ({"name": ""}, "invalid-request"),
        ({"birth_date": "2999-01-01"}, "invalid-request"),
        ({"phone": "1"}, "invalid-request"),
        ({"password": PASSWORD}, "invalid-request"),
    ],
)
def test_invitation_refuses_bad_input(
    api: ApiHarness, overrides: dict[str, Any], slug: str
) -> None:
    coordinator = api.user(Role.COORDINATOR)

    response = api.client.post(
        "/patients/invitations", json=invitation(**overrides), headers=coordinator.headers
    )

    assert response.status_code == 422
    assert problem(response) == slug
    assert stored(api, Patient) == 0
    assert api.notifier.messages == []


def test_inviting_a_known_address_is_a_conflict(api: ApiHarness) -> None:
    coordinator = api.user(Role.COORDINATOR)
    api.client.post("/patients/invitations", json=invitation(), headers=coordinator.headers)

    response = api.client.post(
        "/patients/invitations",
        json=invitation(email=PATIENT_EMAIL.upper()),
        headers=coordinator.headers,
    )

    assert response.status_code == 409
    assert problem(response) == "login-taken"
    assert stored(api, Patient) == 1


@pytest.mark.parametrize("role", [Role.ADMIN, Role.ANALYST])
def test_only_coordinators_invite(api: ApiHarness, role: Role) -> None:
    caller = api.user(role)
    response = api.client.post("/patients/invitations", json=invitation(), headers=caller.headers)
    assert response.status_code == 403
    assert problem(response) == "forbidden"
    assert stored(api, Patient) == 0
