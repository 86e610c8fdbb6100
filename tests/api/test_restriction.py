"""Restriction of processing at the patient's request (Art. 18): what the patient sees, what
coordinators and partners can no longer do, QA extracts, and that only the privacy officer
lifts it."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pyarrow.parquet as pq
from sqlmodel import func, select

from tests.api.test_cases import assert_problem, open_case
from tests.api.test_extracts import REQUEST, run_build
from tests.api.test_rights_register import (
    events,
    register,
    request_count,
    rights_events,
    stamp,
)
from tests.api.test_transfers import Forwardable, forward, forwardable
from tests.apiharness import ApiHarness
from tests.factories import Vault as FactoryVault
from tests.factories import intake_limits, make_qa_case, make_qa_patient
from vault.accounts.models import Role
from vault.consents.models import Restriction
from vault.transfers.models import Transfer


def issued_link(api: ApiHarness, setup: Forwardable, **overrides: Any) -> dict[str, Any]:
    """A transfer's answer, with the link's token; the clock moves on a second after it, so
    transfers are listed in the order they were made."""
    response = forward(api, setup, **overrides)
    api.clock.advance(seconds=1)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    body["token"] = body["link_url"].rsplit("/", 1)[1]
    return body


def download(api: ApiHarness, link: dict[str, Any], document_id: str) -> Any:
    return api.client.post(
        f"/l/{link['token']}/documents/{document_id}", data={"code": link["access_code"]}
    )


def restriction_count(api: ApiHarness) -> int:
    with api.session() as session:
        return session.exec(select(func.count()).select_from(Restriction)).one()


def case_flags(api: ApiHarness, setup: Forwardable, case_id: str) -> list[tuple[Any, Any]]:
    """(restricted, restricted_since) of a case as a coordinator sees it: detail, then list."""
    headers = setup.coordinator.headers
    detail = api.client.get(f"/cases/{case_id}", headers=headers).json()
    [listed] = [c for c in api.client.get("/cases", headers=headers).json() if c["id"] == case_id]
    return [(c["restricted"], c["restricted_since"]) for c in (detail, listed)]


def test_a_patient_restricts_all_their_data(api: ApiHarness) -> None:
    setup = forwardable(api)
    link = issued_link(api, setup)
    api.clock.advance(minutes=1)

    response = api.client.post("/me/restriction", headers=setup.patient.headers)

    assert response.status_code == 201, response.text
    now = stamp(api)
    body = response.json()
    assert body["placed"] is True
    restriction = body["restriction"]
    assert (restriction["patient_id"], restriction["case_id"]) == (
        str(setup.patient.patient_id),
        None,
    )
    assert (restriction["reason"], restriction["placed_at"]) == ("patient-request", now)
    # What the patient sees: the restriction and the request in their register.
    mine = api.client.get("/me/restrictions", headers=setup.patient.headers).json()
    assert [r["id"] for r in mine] == [restriction["id"]]
    [entry] = register(api, setup.patient)
    assert (entry["id"], entry["right"], entry["status"]) == (
        body["request_id"],
        "restriction",
        "completed",
    )
    # Coordinators see the flag, and can forward nothing.
    assert case_flags(api, setup, setup.case_id) == [(True, now)] * 2
    assert_problem(forward(api, setup), 409, "processing-restricted")
    with api.session() as session:
        assert [t.id for t in session.exec(select(Transfer))] == [uuid.UUID(link["transfer"]["id"])]
    assert events(api, "transfer.refused")[-1].outcome == "refused"
    # The partner's link, issued before, no longer opens or releases anything.
    assert_problem(api.client.get(f"/l/{link['token']}"), 409, "processing-restricted")
    refused = download(api, link, setup.document_ids[0])
    assert_problem(refused, 409, "processing-restricted")
    assert [e.outcome for e in events(api, "link.refused")] == ["denied", "denied"]
    assert events(api, "link.download") == []
    # The audit trail: the request, the restriction with its reason, the outcome; ids only.
    assert rights_events(api) == [
        ("rights.request", "restriction", setup.patient.patient_id),
        ("rights.complete", "restriction", setup.patient.patient_id),
    ]
    [placed] = events(api, "restriction.place")
    assert (placed.patient_id, placed.case_id, placed.purpose, placed.actor_id) == (
        setup.patient.patient_id,
        None,
        "restriction",
        setup.patient.id,
    )


def test_only_the_privacy_officer_lifts_it(api: ApiHarness) -> None:
    setup = forwardable(api)
    link = issued_link(api, setup)
    placed = api.client.post("/me/restriction", headers=setup.patient.headers).json()
    restriction_id = placed["restriction"]["id"]

    for user in (setup.patient, setup.coordinator):
        lifted = api.client.post(f"/admin/restrictions/{restriction_id}/lift", headers=user.headers)
        assert_problem(lifted, 403, "forbidden")
    assert_problem(forward(api, setup), 409, "processing-restricted")
    live = api.client.get("/admin/restrictions", headers=setup.admin.headers).json()
    assert [(r["id"], r["patient_id"], r["case_id"], r["reason"]) for r in live] == [
        (restriction_id, str(setup.patient.patient_id), None, "patient-request")
    ]
    lifted = api.client.post(
        f"/admin/restrictions/{restriction_id}/lift", headers=setup.admin.headers
    )

    assert lifted.status_code == 200
    assert api.client.get("/admin/restrictions", headers=setup.admin.headers).json() == []
    everything = api.client.get("/admin/restrictions?live=false", headers=setup.admin.headers)
    assert [r["lifted_at"] for r in everything.json()] == [stamp(api)]
    assert case_flags(api, setup, setup.case_id) == [(False, None)] * 2
    assert download(api, link, setup.document_ids[0]).status_code == 200
    assert forward(api, setup).status_code == 201
    mine = api.client.get("/me/restrictions", headers=setup.patient.headers).json()
    assert mine[0]["lifted_at"] == stamp(api)
    assert [e.patient_id for e in events(api, "restriction.list")] == [
        None,
        None,
        None,
        setup.patient.patient_id,
    ]


def test_a_restriction_of_one_case_leaves_the_others_alone(api: ApiHarness) -> None:
    setup = forwardable(api)
    link = issued_link(api, setup)
    other_case = open_case(api, setup.patient)

    response = api.client.post(
        "/me/restriction", headers=setup.patient.headers, json={"case_id": setup.case_id}
    )

    assert response.status_code == 201, response.text
    assert response.json()["restriction"]["case_id"] == setup.case_id
    assert case_flags(api, setup, setup.case_id) == [(True, stamp(api))] * 2
    assert case_flags(api, setup, other_case) == [(False, None)] * 2
    assert_problem(download(api, link, setup.document_ids[0]), 409, "processing-restricted")
    assert_problem(forward(api, setup), 409, "processing-restricted")


def test_asking_again_keeps_the_restriction_and_registers_the_request(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    first = api.client.post("/me/restriction", headers=patient.headers)

    again = api.client.post("/me/restriction", headers=patient.headers)
    covered = api.client.post("/me/restriction", headers=patient.headers, json={"case_id": case_id})

    assert first.status_code == 201
    for response in (again, covered):
        assert response.status_code == 200, response.text
        assert response.json()["placed"] is False
        assert response.json()["restriction"] == first.json()["restriction"]
    assert restriction_count(api) == 1
    assert [e["right"] for e in register(api, patient)] == ["restriction"] * 3
    assert len(events(api, "restriction.place")) == 1


def test_a_case_not_the_patients_own_is_not_found_and_nothing_is_stored(
    api: ApiHarness,
) -> None:
    patient, other = api.patient(), api.patient()
    others_case = open_case(api, other)

    for case_id in (others_case, str(uuid.uuid4())):
        response = api.client.post(
            "/me/restriction", headers=patient.headers, json={"case_id": case_id}
        )
        assert_problem(response, 404, "not-found")
    for body in ({"case_id": "not-a-uuid"}, {"patient_id": str(other.patient_id)}):
        response = api.client.post("/me/restriction", headers=patient.headers, json=body)
        assert_problem(response, 422, "invalid-request")
    assert restriction_count(api) == 0
    assert request_count(api) == 0
    assert events(api, "restriction.place", "rights.request") == []


def test_only_patients_ask_for_a_restriction_of_their_own_data(api: ApiHarness) -> None:
    for role in (Role.COORDINATOR, Role.ADMIN, Role.ANALYST):
        user = api.user(role)
        assert_problem(api.client.post("/me/restriction", headers=user.headers), 403, "forbidden")
        assert_problem(api.client.get("/me/restrictions", headers=user.headers), 403, "forbidden")
    for role in (Role.COORDINATOR, Role.ANALYST):
        user = api.user(role)
        listed = api.client.get("/admin/restrictions", headers=user.headers)
        assert_problem(listed, 403, "forbidden")
    assert restriction_count(api) == 0


def test_new_qa_extracts_leave_a_restricted_patient_out(api: ApiHarness) -> None:
    with api.session() as session:
        vault = FactoryVault(
            session=session,
            store=api.runtime.blob_store,
            keys=api.runtime.key_store,
            spool_dir=api.runtime.spool_dir,
            limits=intake_limits(),
        )
        patients = [make_qa_patient(session, vault.keys) for _ in range(6)]
        for patient in patients:
            make_qa_case(vault, patient)
        restricted_id = patients[0].id
    restricted = api.user(Role.PATIENT, patient_id=restricted_id)
    analyst = api.user(Role.ANALYST)
    placed = api.client.post("/me/restriction", headers=restricted.headers)
    assert placed.status_code == 201, placed.text

    extract_id = api.client.post("/extracts", json=REQUEST, headers=analyst.headers).json()["id"]
    run_build(api, extract_id)

    status = api.client.get(f"/extracts/{extract_id}", headers=analyst.headers).json()
    assert status["status"] == "ready"
    assert status["report"]["rows"] == 5
    content = api.client.get(f"/extracts/{extract_id}/content", headers=analyst.headers)
    assert pq.read_table(io.BytesIO(content.content)).num_rows == 5
