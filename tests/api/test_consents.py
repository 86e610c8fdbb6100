"""The consents API: public texts, patients give and withdraw consent for their own cases only,
admins place and lift restrictions."""

from __future__ import annotations

from sqlmodel import select

from tests.api.test_cases import assert_problem, open_case
from tests.apiharness import ApiHarness
from vault.accounts.models import Role
from vault.consents.models import Consent, Restriction
from vault.consents.texts import FORWARDING_2026_11

TEXT = {"text_version": FORWARDING_2026_11.version}


def test_the_texts_are_public(api: ApiHarness) -> None:
    response = api.client.get("/consent-texts")

    assert response.status_code == 200
    assert response.json() == [
        {
            "version": FORWARDING_2026_11.version,
            "text": FORWARDING_2026_11.text,
            "sha256": FORWARDING_2026_11.sha256,
        }
    ]


def test_a_patient_consents_lists_and_withdraws(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)

    given = api.client.post(f"/cases/{case_id}/consents", headers=patient.headers, json=TEXT)
    listed = api.client.get(f"/cases/{case_id}/consents", headers=patient.headers)
    withdrawn = api.client.post(
        f"/cases/{case_id}/consents/{given.json()['id']}/withdraw", headers=patient.headers
    )

    assert given.status_code == 201
    assert given.json()["text_sha256"] == FORWARDING_2026_11.sha256
    assert [c["id"] for c in listed.json()] == [given.json()["id"]]
    assert withdrawn.status_code == 200
    assert withdrawn.json()["withdrawn_at"] == "2026-11-24T09:00:00Z"


def test_another_patients_case_is_not_found_and_nothing_stored(api: ApiHarness) -> None:
    owner, stranger = api.patient(), api.patient()
    case_id = open_case(api, owner)

    given = api.client.post(f"/cases/{case_id}/consents", headers=stranger.headers, json=TEXT)
    listed = api.client.get(f"/cases/{case_id}/consents", headers=stranger.headers)

    assert_problem(given, 404, "not-found")
    assert_problem(listed, 404, "not-found")
    with api.session() as session:
        assert session.exec(select(Consent)).all() == []


def test_an_unknown_text_is_refused(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)

    response = api.client.post(
        f"/cases/{case_id}/consents", headers=patient.headers, json={"text_version": "v0"}
    )

    assert_problem(response, 422, "unknown-consent-text")
    with api.session() as session:
        assert session.exec(select(Consent)).all() == []


def test_only_admins_place_restrictions(api: ApiHarness) -> None:
    patient = api.patient()
    body = {"patient_id": str(patient.patient_id)}

    for user in (patient, api.user(Role.COORDINATOR)):
        response = api.client.post("/admin/restrictions", headers=user.headers, json=body)
        assert_problem(response, 403, "forbidden")
    with api.session() as session:
        assert session.exec(select(Restriction)).all() == []
    admin = api.user(Role.ADMIN)
    placed = api.client.post("/admin/restrictions", headers=admin.headers, json=body)
    assert placed.status_code == 201
    assert placed.json()["case_id"] is None
