"""The profile and its rectification (Art. 16): the patient reads and corrects their identity
fields; old values are overwritten, a changed login address moves the login with it, and bad
input stores nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.api.test_cases import assert_problem
from tests.api.test_rights_register import events, register, request_count, rights_events
from tests.apiharness import ApiHarness, TestUser
from tests.factories import PATIENT_NAME, identity
from vault.accounts.models import Role
from vault.patients.models import Patient
from vault.patients.service import register_patient

NEW_NAME = "Erika Musterfrau-Korrigiert"


def stored_patient(api: ApiHarness, user: TestUser) -> Patient:
    with api.session() as session:
        patient = session.get(Patient, user.patient_id)
        assert patient is not None
        return patient


def profile(api: ApiHarness, user: TestUser) -> dict[str, Any]:
    response = api.client.get("/me/profile", headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_patient_reads_their_profile(api: ApiHarness) -> None:
    patient = api.patient(name=PATIENT_NAME)

    response = api.client.get("/me/profile", headers=patient.headers)

    assert response.status_code == 200
    assert response.json() == {
        "name": PATIENT_NAME,
        "birth_date": "1964-08-12",
        "email": patient.login,
        "phone": "+49 30 1234567",
        "sex": "unknown",
        "country": None,
    }
    assert response.headers["cache-control"] == "no-store"
    [read] = events(api, "patient.read")
    assert (read.patient_id, read.actor_id) == (patient.patient_id, patient.id)


def test_a_correction_overwrites_the_old_values_and_is_registered(api: ApiHarness) -> None:
    patient = api.patient(name=PATIENT_NAME)
    before = stored_patient(api, patient)

    response = api.client.patch(
        "/me/profile",
        headers=patient.headers,
        json={"name": NEW_NAME, "country": "AT", "sex": "female", "phone": None},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fields"] == ["name", "phone", "sex", "country"]
    assert body["login_changed"] is False
    assert PATIENT_NAME not in response.text
    assert NEW_NAME not in response.text
    shown = profile(api, patient)
    assert (shown["name"], shown["country"], shown["sex"], shown["phone"]) == (
        NEW_NAME,
        "AT",
        "female",
        None,
    )
    after = stored_patient(api, patient)
    assert after.name_sealed != before.name_sealed  # overwritten: the old value is not kept
    assert after.phone_sealed is None
    assert after.birth_date_sealed == before.birth_date_sealed  # untouched fields stay
    [entry] = register(api, patient)
    assert entry["id"] == body["request_id"]
    assert (entry["right"], entry["status"]) == ("rectification", "completed")
    assert rights_events(api) == [
        ("rights.request", "rectification", patient.patient_id),
        ("rights.complete", "rectification", patient.patient_id),
    ]
    [rectified] = events(api, "patient.rectify")
    assert (rectified.patient_id, rectified.purpose) == (patient.patient_id, "rectification")
    assert all(NEW_NAME not in repr(event.model_dump()) for event in events(api))


def test_a_new_address_that_is_the_login_becomes_the_login(api: ApiHarness) -> None:
    patient = api.patient()
    new_address = f"new-{uuid.uuid4().hex[:8]}@example.org"

    response = api.client.patch("/me/profile", headers=patient.headers, json={"email": new_address})

    assert response.status_code == 200, response.text
    assert response.json()["login_changed"] is True
    assert profile(api, patient)["email"] == new_address
    assert api.sign_in(new_address, patient.password)
    old_login = api.client.post(
        "/auth/token", data={"username": patient.login, "password": patient.password}
    )
    assert_problem(old_login, 401, "invalid-credentials")


def test_a_login_other_than_the_address_stays(api: ApiHarness) -> None:
    with api.session() as session:
        record = register_patient(
            session=session, keys=api.runtime.key_store, identity=identity(), now=api.clock()
        )
        session.commit()
        patient_id = record.id
    patient = api.user(Role.PATIENT, login="erika-login", patient_id=patient_id)

    response = api.client.patch(
        "/me/profile", headers=patient.headers, json={"email": "other@example.org"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["login_changed"] is False
    assert api.sign_in("erika-login", patient.password)


def test_an_address_that_is_another_accounts_login_is_refused(api: ApiHarness) -> None:
    patient, other = api.patient(), api.patient()
    before = stored_patient(api, patient)

    response = api.client.patch(
        "/me/profile", headers=patient.headers, json={"email": other.login, "name": NEW_NAME}
    )

    assert_problem(response, 409, "email-taken")
    assert other.login not in response.text
    assert stored_patient(api, patient).model_dump() == before.model_dump()
    assert request_count(api) == 0
    assert events(api, "patient.rectify", "rights.request") == []
    assert api.sign_in(patient.login, patient.password)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": None},
        {"email": None},
        {"birth_date": None},
        {"sex": None},
        {"name": ""},
        {"name": "x" * 201},
        {"email": "not-an-address"},
        {"birth_date": "2999-01-01"},
        {"phone": "12"},
        {"country": "de"},
        {"sex": "other"},
        {"nickname": "Eri"},
    ],
)
def test_bad_corrections_are_refused_and_nothing_is_stored(
    api: ApiHarness, body: dict[str, Any]
) -> None:
    patient = api.patient()
    before = stored_patient(api, patient)

    response = api.client.patch("/me/profile", headers=patient.headers, json=body)

    assert_problem(response, 422, "invalid-request")
    assert stored_patient(api, patient).model_dump() == before.model_dump()
    assert request_count(api) == 0
    assert events(api, "patient.rectify") == []


def test_an_erased_patient_has_no_profile_left(api: ApiHarness) -> None:
    patient = api.patient()
    with api.session() as session:
        record = session.get(Patient, patient.patient_id)
        assert record is not None
        record.erased_at = api.clock()
        session.add(record)
        session.commit()

    read = api.client.get("/me/profile", headers=patient.headers)
    corrected = api.client.patch("/me/profile", headers=patient.headers, json={"name": NEW_NAME})

    assert_problem(read, 410, "key-destroyed")
    assert_problem(corrected, 410, "key-destroyed")
    assert request_count(api) == 0
    assert events(api, "patient.read", "patient.rectify") == []


def test_only_patients_have_a_profile(api: ApiHarness) -> None:
    for role in (Role.COORDINATOR, Role.ADMIN, Role.ANALYST):
        user = api.user(role)
        assert_problem(api.client.get("/me/profile", headers=user.headers), 403, "forbidden")
        patched = api.client.patch("/me/profile", headers=user.headers, json={"name": NEW_NAME})
        assert_problem(patched, 403, "forbidden")
    assert_problem(
        api.client.patch("/me/profile", json={"name": NEW_NAME}), 401, "not-authenticated"
    )
    assert request_count(api) == 0
