"""The cases API: opening, listing and reading cases, recording the outcome, completing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from tests.apiharness import ApiHarness, TestUser
from tests.unit.vault.cases.test_models import outcome_fields
from vault.accounts.models import Role
from vault.audit.models import AuditEvent
from vault.cases.models import Case

PROBLEM = "https://medvault.invalid/problems/"


def open_case(api: ApiHarness, patient: TestUser) -> str:
    response = api.client.post("/cases", headers=patient.headers)
    assert response.status_code == 201, response.text
    case_id: str = response.json()["id"]
    return case_id


def stored_case(api: ApiHarness, case_id: str) -> Case:
    with api.session() as session:
        case = session.get(Case, uuid.UUID(case_id))
        assert case is not None
        return case


def actions(api: ApiHarness) -> list[str]:
    with api.session() as session:
        return [e.action for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.seq)))]


def assert_problem(response: Any, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == PROBLEM + slug


def test_a_patient_opens_and_reads_their_own_case(api: ApiHarness) -> None:
    patient = api.patient()

    response = api.client.post("/cases", headers=patient.headers)

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "status", "created_at"}
    assert body["status"] == "open"
    detail = api.client.get(f"/cases/{body['id']}", headers=patient.headers).json()
    assert detail["outcome"] is None
    assert detail["patient_id"] == str(patient.patient_id)
    assert actions(api)[-2:] == ["case.open", "case.read"]


def test_patients_see_only_their_own_cases_coordinators_all(api: ApiHarness) -> None:
    alice, bob = api.patient(), api.patient()
    coordinator = api.user(Role.COORDINATOR)
    alices = [open_case(api, alice) for _ in range(2)]
    api.clock.advance(seconds=1)
    bobs = open_case(api, bob)

    as_alice = api.client.get("/cases", headers=alice.headers).json()
    as_coordinator = api.client.get("/cases", headers=coordinator.headers).json()
    paged = api.client.get("/cases?limit=1&offset=0", headers=coordinator.headers).json()

    assert sorted(case["id"] for case in as_alice) == sorted(alices)
    assert {case["id"] for case in as_coordinator} == {*alices, bobs}
    assert [case["id"] for case in paged] == [bobs]  # newest first


@pytest.mark.parametrize(
    ("offset", "status"),
    [(-1, 422), (2**63, 422), (2**63 - 1, 200)],  # 2**63 overflowed the driver: a 500 (fuzzing)
)
def test_the_case_list_offset_is_a_database_integer(
    api: ApiHarness, offset: int, status: int
) -> None:
    coordinator = api.user(Role.COORDINATOR)
    open_case(api, api.patient())
    response = api.client.get("/cases", params={"offset": offset}, headers=coordinator.headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == []
    else:
        assert_problem(response, 422, "invalid-request")


def test_another_patients_case_answers_like_an_unknown_one(api: ApiHarness) -> None:
    alice, bob = api.patient(), api.patient()
    case_id = open_case(api, alice)

    foreign = api.client.get(f"/cases/{case_id}", headers=bob.headers)
    unknown = api.client.get(f"/cases/{uuid.uuid4()}", headers=bob.headers)

    assert_problem(foreign, 404, "not-found")
    assert foreign.json()["detail"] == unknown.json()["detail"]


def test_analysts_and_admins_reach_no_case(api: ApiHarness) -> None:
    case_id = open_case(api, api.patient())
    for role in (Role.ANALYST, Role.ADMIN):
        user = api.user(role)
        assert_problem(api.client.get("/cases", headers=user.headers), 403, "forbidden")
        assert_problem(api.client.get(f"/cases/{case_id}", headers=user.headers), 403, "forbidden")
    assert_problem(api.client.get("/cases"), 401, "not-authenticated")


def test_a_coordinator_records_the_outcome_and_the_patient_sees_it(api: ApiHarness) -> None:
    patient = api.patient()
    coordinator = api.user(Role.COORDINATOR)
    case_id = open_case(api, patient)

    response = api.client.put(
        f"/cases/{case_id}/outcome", headers=coordinator.headers, json=outcome_fields()
    )

    assert response.status_code == 200, response.text
    seen = api.client.get(f"/cases/{case_id}", headers=patient.headers).json()
    assert seen["outcome"]["diagnosis_codes"] == ["M17.1", "I10", "C50.912"]
    assert seen["outcome"]["final_invoice_total"] == "12480.50"
    sealed = stored_case(api, case_id).outcome_sealed
    assert sealed is not None
    assert b"M17.1" not in sealed
    assert "case.outcome" in actions(api)


def test_an_invalid_outcome_is_refused_and_nothing_stored(api: ApiHarness) -> None:
    coordinator = api.user(Role.COORDINATOR)
    case_id = open_case(api, api.patient())

    response = api.client.put(
        f"/cases/{case_id}/outcome",
        headers=coordinator.headers,
        json=outcome_fields(diagnosis_codes=["not-a-code"]),
    )

    assert_problem(response, 422, "invalid-request")
    assert "not-a-code" not in response.text  # the input is never echoed
    assert stored_case(api, case_id).outcome_sealed is None


def test_a_patient_may_not_record_an_outcome_or_complete(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)

    outcome = api.client.put(
        f"/cases/{case_id}/outcome", headers=patient.headers, json=outcome_fields()
    )
    complete = api.client.post(
        f"/cases/{case_id}/complete",
        headers=patient.headers,
        json={"completed_at": api.clock.now.isoformat()},
    )

    assert_problem(outcome, 403, "forbidden")
    assert_problem(complete, 403, "forbidden")
    assert stored_case(api, case_id).outcome_sealed is None
    assert stored_case(api, case_id).treatment_completed_at is None


def test_completing_a_case_once(api: ApiHarness) -> None:
    coordinator = api.user(Role.COORDINATOR)
    case_id = open_case(api, api.patient())
    api.clock.advance(minutes=10)  # within the access token's lifetime
    completed_at = (api.clock.now - timedelta(minutes=5)).isoformat()

    first = api.client.post(
        f"/cases/{case_id}/complete",
        headers=coordinator.headers,
        json={"completed_at": completed_at},
    )
    again = api.client.post(
        f"/cases/{case_id}/complete",
        headers=coordinator.headers,
        json={"completed_at": api.clock.now.isoformat()},
    )

    assert first.status_code == 200, first.text
    assert first.json()["status"] == "completed"
    assert_problem(again, 409, "case-already-completed")
    stored = stored_case(api, case_id)
    assert stored.treatment_completed_at is not None
    assert stored.treatment_completed_at.isoformat().startswith(completed_at[:19])


def test_completion_dates_in_the_future_or_without_zone_are_refused(api: ApiHarness) -> None:
    coordinator = api.user(Role.COORDINATOR)
    case_id = open_case(api, api.patient())

    future = api.client.post(
        f"/cases/{case_id}/complete",
        headers=coordinator.headers,
        json={"completed_at": (api.clock.now + timedelta(minutes=1)).isoformat()},
    )
    naive = api.client.post(
        f"/cases/{case_id}/complete",
        headers=coordinator.headers,
        json={"completed_at": "2026-11-24T08:00:00"},
    )

    assert_problem(future, 422, "invalid-case-update")
    assert_problem(naive, 422, "invalid-request")
    assert stored_case(api, case_id).treatment_completed_at is None
