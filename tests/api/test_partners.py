"""The partners API: admins manage partners, coordinators list the enabled ones."""

from __future__ import annotations

from sqlmodel import select

from tests.api.test_cases import assert_problem
from tests.api.test_transfers import create_partner
from tests.apiharness import ApiHarness
from tests.factories import PARTNER_NAME
from vault.accounts.models import Role
from vault.partners.models import Partner


def test_admins_manage_partners_and_coordinators_see_the_enabled_ones(api: ApiHarness) -> None:
    admin, coordinator = api.user(Role.ADMIN), api.user(Role.COORDINATOR)
    first = create_partner(api, admin).json()
    second = create_partner(api, admin, name="Praxis", kind="physician").json()

    patched = api.client.patch(
        f"/admin/partners/{first['id']}",
        headers=admin.headers,
        json={"contact_email": "neu@klinik.example"},
    )
    disabled = api.client.post(f"/admin/partners/{second['id']}/disable", headers=admin.headers)
    listed = api.client.get("/partners", headers=coordinator.headers)
    everyone = api.client.get("/admin/partners", headers=admin.headers)

    assert patched.status_code == 200
    assert patched.json()["contact_email"] == "neu@klinik.example"
    assert disabled.json()["disabled_at"] == "2026-11-24T09:00:00Z"
    assert listed.json() == [{"id": first["id"], "kind": "clinic", "name": PARTNER_NAME}]
    assert {p["id"] for p in everyone.json()} == {first["id"], second["id"]}


def test_an_invalid_address_is_refused_and_nothing_stored(api: ApiHarness) -> None:
    admin = api.user(Role.ADMIN)

    response = create_partner(api, admin, contact_email="not-an-address")

    assert_problem(response, 422, "invalid-request")  # the schema's e-mail format
    assert "not-an-address" not in response.text
    with api.session() as session:
        assert session.exec(select(Partner)).all() == []


def test_only_admins_manage_and_only_coordinators_list(api: ApiHarness) -> None:
    admin, coordinator = api.user(Role.ADMIN), api.user(Role.COORDINATOR)
    patient = api.patient()

    for user in (coordinator, patient):
        assert_problem(create_partner(api, user), 403, "forbidden")
        assert_problem(api.client.get("/admin/partners", headers=user.headers), 403, "forbidden")
    assert_problem(api.client.get("/partners", headers=patient.headers), 403, "forbidden")
    assert_problem(api.client.get("/partners", headers=admin.headers), 403, "forbidden")
    with api.session() as session:
        assert session.exec(select(Partner)).all() == []
