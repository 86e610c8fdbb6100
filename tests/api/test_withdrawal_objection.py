"""Withdrawal of consent (Art. 7(3)) and objection (Art. 21): effective at once for new
transfers, unused links issued on that basis revoked, used or expired ones kept and said so,
the register and the audit trail; and the QA withdrawal and objection in the register."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import select

from tests.api.test_cases import assert_problem
from tests.api.test_restriction import download, issued_link
from tests.api.test_rights_register import (
    events,
    refreshed,
    register,
    request_count,
    rights_events,
    stamp,
)
from tests.api.test_surveys import answers, completed_case
from tests.api.test_transfers import Forwardable, forward, forwardable
from tests.apiharness import ApiHarness
from tests.factories import PARTNER_NAME
from vault.consents.models import Consent
from vault.subject_rights.models import InterestObjection
from vault.transfers.models import Transfer


def transfer_id(link: dict[str, Any]) -> str:
    value: str = link["transfer"]["id"]
    return value


def withdraw(api: ApiHarness, setup: Forwardable) -> Any:
    return api.client.post(
        f"/cases/{setup.case_id}/consents/{setup.consent_id}/withdraw",
        headers=setup.patient.headers,
    )


def object_to_interests(api: ApiHarness, setup: Forwardable) -> Any:
    return api.client.post("/me/objections/legitimate-interests", headers=setup.patient.headers)


def revoked_at(api: ApiHarness, transfer: str) -> Any:
    with api.session() as session:
        stored = session.get(Transfer, uuid.UUID(transfer))
        assert stored is not None
        return stored.revoked_at


def effect(setup: Forwardable, link: dict[str, Any], basis: str, **why: str) -> dict[str, Any]:
    """How an answer describes one transfer (``why=...`` for a kept one)."""
    return {
        "transfer_id": transfer_id(link),
        "case_id": setup.case_id,
        "partner": {"id": setup.partner_id, "kind": "clinic", "name": PARTNER_NAME},
        "purpose": "treatment-check",
        "legal_basis": basis,
        **why,
    }


def test_withdrawing_consent_revokes_unused_links_and_says_what_changed(api: ApiHarness) -> None:
    setup = forwardable(api)
    unused = issued_link(api, setup)
    used = issued_link(api, setup)
    expiring = issued_link(api, setup, expires_in_days=1)
    other_basis = issued_link(api, setup, legal_basis="art9-2-h", consent_id=None)
    assert download(api, used, setup.document_ids[0]).status_code == 200
    api.clock.advance(days=2)
    setup.patient = refreshed(api, setup.patient)
    setup.coordinator = refreshed(api, setup.coordinator)

    response = withdraw(api, setup)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["withdrawn_at"] == stamp(api)  # the consent, as before
    assert body["changed"] is True
    assert body["revoked_transfers"] == [effect(setup, unused, "art9-2-a")]
    assert body["kept_transfers"] == [
        effect(setup, used, "art9-2-a", why="downloaded"),
        effect(setup, expiring, "art9-2-a", why="expired"),
    ]
    # The partner: the unused link is revoked; the others are as they were.
    assert_problem(api.client.get(f"/l/{unused['token']}"), 410, "link-revoked")
    assert revoked_at(api, transfer_id(used)) is None
    assert download(api, other_basis, setup.document_ids[0]).status_code == 200
    # The coordinator: nothing new may rely on the consent; other bases still work.
    assert_problem(forward(api, setup), 409, "consent-withdrawn")
    assert forward(api, setup, legal_basis="art9-2-h", consent_id=None).status_code == 201
    # The patient: the register, and the revocation among their disclosures.
    [entry] = register(api, setup.patient)
    assert (entry["id"], entry["right"], entry["status"]) == (
        body["request_id"],
        "consent-withdrawal",
        "completed",
    )
    disclosures = api.client.get("/me/disclosures", headers=setup.patient.headers).json()
    revoked = {d["transfer_id"]: d["revoked_at"] for d in disclosures}
    assert revoked[transfer_id(unused)] == body["withdrawn_at"]
    assert revoked[transfer_id(used)] is None
    # The audit trail, ids only: request, withdrawal, revocation, outcome.
    trail = [
        (e.action, e.transfer_id, e.purpose)
        for e in events(
            api, "rights.request", "consent.withdraw", "transfer.revoke", "rights.complete"
        )
    ]
    assert trail == [
        ("rights.request", None, "consent-withdrawal"),
        ("consent.withdraw", None, None),
        ("transfer.revoke", uuid.UUID(transfer_id(unused)), "treatment-check"),
        ("rights.complete", None, "consent-withdrawal"),
    ]
    [revocation] = events(api, "transfer.revoke")
    assert (revocation.actor_id, revocation.legal_basis) == (setup.patient.id, "art9-2-a")


def test_withdrawing_again_changes_nothing_but_the_register(api: ApiHarness) -> None:
    setup = forwardable(api)
    issued_link(api, setup)
    first = withdraw(api, setup)
    api.clock.advance(minutes=1)

    again = withdraw(api, setup)

    assert again.status_code == 200, again.text
    assert again.json()["withdrawn_at"] == first.json()["withdrawn_at"]
    assert (again.json()["changed"], again.json()["revoked_transfers"]) == (False, [])
    assert len(events(api, "consent.withdraw")) == 1
    assert len(events(api, "transfer.revoke")) == 1
    assert [e["right"] for e in register(api, setup.patient)] == ["consent-withdrawal"] * 2


def test_another_patients_consent_is_not_found_and_nothing_is_stored(api: ApiHarness) -> None:
    setup = forwardable(api)
    link = issued_link(api, setup)
    stranger = api.patient()

    response = api.client.post(
        f"/cases/{setup.case_id}/consents/{setup.consent_id}/withdraw", headers=stranger.headers
    )
    unknown = api.client.post(
        f"/cases/{setup.case_id}/consents/{uuid.uuid4()}/withdraw", headers=setup.patient.headers
    )

    assert_problem(response, 404, "not-found")
    assert_problem(unknown, 404, "not-found")
    with api.session() as session:
        assert [c.withdrawn_at for c in session.exec(select(Consent))] == [None]
    assert revoked_at(api, transfer_id(link)) is None
    assert request_count(api) == 0
    assert events(api, "consent.withdraw", "transfer.revoke", "rights.request") == []
    assert_problem(
        api.client.post(
            f"/cases/{setup.case_id}/consents/{setup.consent_id}/withdraw",
            headers=setup.coordinator.headers,
        ),
        403,
        "forbidden",
    )


def test_an_objection_ends_processing_on_legitimate_interests(api: ApiHarness) -> None:
    setup = forwardable(api)
    interests = {"legal_basis": "art6-1-f", "consent_id": None}
    unused = issued_link(api, setup, **interests)
    used = issued_link(api, setup, **interests)
    care = issued_link(api, setup, legal_basis="art9-2-h", consent_id=None)
    assert download(api, used, setup.document_ids[1]).status_code == 200
    bystander = forwardable(api)
    theirs = issued_link(api, bystander, **interests)

    response = object_to_interests(api, setup)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["objected_at"], body["changed"]) == (stamp(api), True)
    assert body["revoked_transfers"] == [effect(setup, unused, "art6-1-f")]
    assert body["kept_transfers"] == [effect(setup, used, "art6-1-f", why="downloaded")]
    assert_problem(download(api, unused, setup.document_ids[0]), 410, "link-revoked")  # the partner
    assert download(api, care, setup.document_ids[0]).status_code == 200
    assert download(api, theirs, bystander.document_ids[0]).status_code == 200
    # Coordinators: no new transfer on legitimate interests, for this patient only.
    refused = forward(api, setup, **interests)
    assert_problem(refused, 409, "objection-raised")
    assert events(api, "transfer.refused")[-1].legal_basis == "art6-1-f"
    with api.session() as session:
        assert len(session.exec(select(Transfer)).all()) == 4
    assert forward(api, setup, legal_basis="art9-2-h", consent_id=None).status_code == 201
    assert forward(api, bystander, **interests).status_code == 201
    # The patient's register and the audit trail.
    [entry] = register(api, setup.patient)
    assert (entry["id"], entry["right"], entry["status"]) == (
        body["request_id"],
        "objection",
        "completed",
    )
    assert rights_events(api) == [
        ("rights.request", "objection", setup.patient.patient_id),
        ("rights.complete", "objection", setup.patient.patient_id),
    ]
    [objected] = events(api, "objection.legitimate_interests")
    assert (objected.patient_id, objected.legal_basis, objected.purpose) == (
        setup.patient.patient_id,
        "art6-1-f",
        "objection",
    )
    assert [e.transfer_id for e in events(api, "transfer.revoke")] == [
        uuid.UUID(transfer_id(unused))
    ]


def test_objecting_again_is_answered_and_changes_nothing(api: ApiHarness) -> None:
    setup = forwardable(api)
    first = object_to_interests(api, setup)
    objected_at = stamp(api)
    api.clock.advance(minutes=1)

    again = object_to_interests(api, setup)

    assert again.status_code == 200, again.text
    assert again.json()["objected_at"] == first.json()["objected_at"] == objected_at
    assert (again.json()["changed"], again.json()["revoked_transfers"]) == (False, [])
    assert len(events(api, "objection.legitimate_interests")) == 1
    with api.session() as session:
        assert len(session.exec(select(InterestObjection)).all()) == 1
    assert [e["right"] for e in register(api, setup.patient)] == ["objection"] * 2


def test_only_patients_object_for_themselves(api: ApiHarness) -> None:
    setup = forwardable(api)

    for user in (setup.coordinator, setup.admin):
        response = api.client.post("/me/objections/legitimate-interests", headers=user.headers)
        assert_problem(response, 403, "forbidden")

    with api.session() as session:
        assert session.exec(select(InterestObjection)).all() == []
    assert request_count(api) == 0


def test_qa_withdrawal_and_objection_are_registered(api: ApiHarness) -> None:
    setup = forwardable(api)
    patient = setup.patient
    case_id = completed_case(api, patient)
    api.client.post(f"/cases/{case_id}/survey", json=answers(), headers=patient.headers)

    withdrawn = api.client.post("/me/qa-consent/withdraw", headers=patient.headers)
    api.clock.advance(seconds=1)
    objected = api.client.post("/me/objections/qa", headers=patient.headers)
    api.clock.advance(seconds=1)
    objected_again = api.client.post("/me/objections/qa", headers=patient.headers)

    assert withdrawn.json() == {"surveys_changed": 1}
    assert (objected.json()["changed"], objected_again.json()["changed"]) == (True, False)
    assert [(e["right"], e["status"]) for e in register(api, patient)] == [
        ("objection", "completed"),
        ("objection", "completed"),
        ("consent-withdrawal", "completed"),
    ]
    purposes = [(e.action, e.purpose) for e in events(api, "qa_consent.withdraw", "objection.qa")]
    assert purposes == [
        ("qa_consent.withdraw", "consent-withdrawal"),
        ("objection.qa", "objection"),
        ("objection.qa", "objection"),
    ]
