"""Erasure (Art. 17) over HTTP: what the patient sees, what coordinators, partners and the
privacy officer can and cannot do afterwards, kept parts under restriction, the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select

from keys.models import KeyRecord
from tests.api.test_auth import code_in, registration
from tests.api.test_cases import assert_problem, open_case
from tests.api.test_retention import complete, shred_now, signed_in_again
from tests.api.test_subject_exports import link, ready_export
from tests.api.test_transfers import forward, forwardable, upload
from tests.apiharness import ApiHarness, TestUser
from tests.factories import PATIENT_EMAIL, PATIENT_NAME, pdf_bytes
from vault.accounts.models import Role, User
from vault.audit.models import AuditEvent
from vault.consents.models import Restriction
from vault.retention.service import case_object_prefix
from vault.subject_rights.exports import export_prefix
from vault.subject_rights.models import (
    ErasedCase,
    ExportStatus,
    RetainedPart,
    RightsRequest,
    SubjectExport,
)

CONFIRM = {"confirm": True}


def erase(api: ApiHarness, patient: TestUser, body: Any = CONFIRM) -> Any:
    return api.client.post("/me/erasure", headers=patient.headers, json=body)


def audit_trail(api: ApiHarness, patient: TestUser) -> list[tuple[str, str | None]]:
    with api.session() as session:
        rows = session.exec(
            select(AuditEvent)
            .where(AuditEvent.patient_id == patient.patient_id)
            .order_by(col(AuditEvent.seq))
        ).all()
        return [(row.action, row.purpose) for row in rows]


def stored(api: ApiHarness, table: type) -> int:
    with api.session() as session:
        return session.exec(select(func.count()).select_from(table)).one()


@pytest.mark.parametrize(
    "body",
    [None, {}, {"confirm": False}, {"confirm": "yes"}, {"confirm": True, "cases": ["all"]}],
    ids=["no-body", "empty", "false", "not-a-boolean", "unknown-field"],
)
def test_an_unconfirmed_erasure_is_refused_and_changes_nothing(api: ApiHarness, body: Any) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)

    response = erase(api, patient, body)

    assert_problem(response, 422, "invalid-request")
    assert stored(api, RightsRequest) == stored(api, ErasedCase) == 0
    assert api.client.get("/auth/me", headers=patient.headers).status_code == 200
    assert api.client.get(f"/cases/{case_id}", headers=patient.headers).json()["status"] == "open"


def test_only_a_patient_erases_and_only_their_own_data(api: ApiHarness) -> None:
    for role in (Role.COORDINATOR, Role.ANALYST, Role.ADMIN):
        assert_problem(erase(api, api.user(role)), 403, "forbidden")
    assert_problem(api.client.post("/me/erasure", json=CONFIRM), 401, "not-authenticated")
    assert stored(api, RightsRequest) == 0


def test_erasure_of_open_cases_leaves_nothing_readable_anywhere(api: ApiHarness) -> None:
    setup = forwardable(api)
    issued = forward(api, setup).json()
    token = issued["link_url"].rsplit("/", 1)[1]
    bystander = api.patient(name="Max Beispiel")
    their_case = open_case(api, bystander)
    their_document = upload(api, bystander, their_case, pdf_bytes(), "arztbrief.pdf")

    response = erase(api, setup.patient)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    assert body["erased_cases"] == [setup.case_id]
    assert body["kept"] == []
    assert body["account"] == "disabled"
    request = body["request"]
    assert (request["right"], request["status"]) == ("erasure", "completed")
    assert request["received_at"] == "2026-11-24T09:00:00Z"
    assert request["due_at"] == "2026-12-24T09:00:00Z"
    assert request["completed_at"] == "2026-11-24T09:00:00Z"
    assert (request["patient_id"], request["overdue"]) == (str(setup.patient.patient_id), False)

    # The patient: signed out for good, and the address is free to register again.
    assert_problem(
        api.client.get("/auth/me", headers=setup.patient.headers), 401, "not-authenticated"
    )
    refused = api.client.post(
        "/auth/token", data={"username": setup.patient.login, "password": setup.patient.password}
    )
    assert refused.status_code == 401
    # Coordinators: the case is shredded, its documents and its forwarding gone.
    coordinator = setup.coordinator
    for document_id in setup.document_ids:
        assert_problem(
            api.client.get(f"/documents/{document_id}/content", headers=coordinator.headers),
            410,
            "gone",
        )
    assert_problem(
        api.client.get(f"/cases/{setup.case_id}", headers=coordinator.headers), 410, "gone"
    )
    listed = api.client.get("/cases", headers=coordinator.headers).json()
    assert {case["id"]: case["status"] for case in listed}[setup.case_id] == "shredded"
    assert_problem(forward(api, setup, consent_id=None, legal_basis="art9-2-h"), 410, "gone")
    # The partner: the link sent before is dead.
    assert_problem(api.client.get(f"/l/{token}"), 410, "gone")
    assert_problem(
        api.client.post(
            f"/l/{token}/documents/{setup.document_ids[0]}", data={"code": issued["access_code"]}
        ),
        410,
        "gone",
    )
    # The object store: nothing under the case.
    store = api.runtime.blob_store
    assert list(store.keys(case_object_prefix(uuid.UUID(setup.case_id)))) == []
    # Nobody else's data was touched.
    other = api.client.get(f"/documents/{their_document}/content", headers=bystander.headers)
    assert other.status_code == 200
    assert list(store.keys(case_object_prefix(uuid.UUID(their_case))))
    # The audit trail: every step, the right in ``purpose``, and no name or address anywhere.
    trail = audit_trail(api, setup.patient)
    erasure_steps = [entry for entry in trail if entry[1] == "erasure"]
    assert erasure_steps[0] == ("rights.request", "erasure")
    assert ("consent.withdraw", "erasure") in erasure_steps
    assert ("user.disable", "erasure") in erasure_steps
    assert erasure_steps[-3:] == [
        ("case.erase", "erasure"),
        ("patient.erase", "erasure"),
        ("rights.complete", "erasure"),
    ]
    with api.session() as session:
        dumped = " ".join(
            str(event.model_dump()) for event in session.exec(select(AuditEvent)).all()
        )
    for secret in (PATIENT_NAME, setup.patient.login, PATIENT_EMAIL):
        assert secret not in dumped

    again = api.client.post("/auth/register", json=registration(email=setup.patient.login))
    assert again.status_code == 202
    assert "You already have an account" not in api.notifier.messages[-1].body
    assert code_in(api)
    with api.session() as session:
        assert session.exec(select(func.count()).select_from(User)).one() == 5  # a new one


def test_kept_parts_are_restricted_listed_and_fall_due_later(api: ApiHarness) -> None:
    patient = api.patient()
    coordinator = api.user(Role.COORDINATOR)
    admin = api.user(Role.ADMIN)
    erased_id, held_id, completed_id = (open_case(api, patient) for _ in range(3))
    document_id = upload(api, patient, completed_id, pdf_bytes(), "rechnung.pdf")
    complete(api, coordinator, completed_id)
    hold = api.client.post(
        f"/admin/cases/{held_id}/legal-hold", headers=admin.headers, json={"reason": "litigation"}
    )
    assert hold.status_code == 200, hold.text
    partner = api.client.post(
        "/admin/partners",
        headers=admin.headers,
        json={"kind": "insurer", "name": "Kasse", "contact_email": "k@kasse.example"},
    ).json()["id"]

    response = erase(api, patient)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "partially-completed"
    assert body["request"]["status"] == "partially-completed"
    assert body["erased_cases"] == [erased_id]
    due = datetime.fromisoformat(api.clock().isoformat()).replace(year=2031)
    assert sorted(body["kept"], key=lambda part: part["ground"]) == [
        {
            "case_id": completed_id,
            "ground": "art17-3-b",
            "reason": "treatment-and-billing-records",
            "until": due.isoformat().replace("+00:00", "Z"),
        },
        {"case_id": held_id, "ground": "art17-3-e", "reason": "litigation", "until": None},
    ]
    assert_problem(api.client.get("/auth/me", headers=patient.headers), 401, "not-authenticated")

    # Coordinators see the kept cases restricted, and cannot forward them.
    for case_id in (held_id, completed_id):
        detail = api.client.get(f"/cases/{case_id}", headers=coordinator.headers)
        assert detail.status_code == 200
        assert detail.json()["restricted"] is True
    refused = api.client.post(
        f"/cases/{completed_id}/transfers",
        headers=coordinator.headers,
        json={
            "document_ids": [document_id],
            "partner_id": partner,
            "purpose": "billing",
            "legal_basis": "art6-1-c",
        },
    )
    assert_problem(refused, 409, "processing-restricted")
    assert_problem(api.client.get(f"/cases/{erased_id}", headers=coordinator.headers), 410, "gone")
    assert stored(api, Restriction) == 1

    # The privacy officer sees what was kept; nobody else does.
    retained_url = f"/admin/rights-requests/{body['request']['id']}/retained"
    listed = api.client.get(retained_url, headers=admin.headers)
    assert listed.status_code == 200
    assert sorted(listed.json(), key=lambda part: part["ground"]) == sorted(
        body["kept"], key=lambda part: part["ground"]
    )
    assert_problem(api.client.get(retained_url, headers=coordinator.headers), 403, "forbidden")
    assert_problem(
        api.client.get(f"/admin/rights-requests/{uuid.uuid4()}/retained", headers=admin.headers),
        404,
        "not-found",
    )
    assert ("restriction.place", "erasure") in audit_trail(api, patient)
    assert ("patient.erase", "erasure") not in audit_trail(api, patient)

    # On the retention date the completed case is shredded; the held one stays until lifted,
    # then goes with the patient.
    api.clock.now = due + timedelta(days=1)
    assert shred_now(api, retention_years=5).shredded == (uuid.UUID(completed_id),)
    admin = signed_in_again(api, admin)
    lifted = api.client.post(f"/admin/cases/{held_id}/legal-hold/lift", headers=admin.headers)
    assert lifted.status_code == 200, lifted.text
    report = shred_now(api, retention_years=5)
    assert report.shredded == (uuid.UUID(held_id),)
    assert report.patients_erased == 1
    trail = audit_trail(api, patient)
    assert trail.count(("case.erase", "erasure")) == 2  # the open case, then the held one
    assert ("case.shred", None) in trail  # the completed case, at its retention date
    assert trail[-1] == ("patient.erase", "erasure")
    assert stored(api, RetainedPart) == 2


def test_erasure_deletes_every_export_and_its_download_link_dies(api: ApiHarness) -> None:
    patient = api.patient()
    upload(api, patient, open_case(api, patient), pdf_bytes(), "befund.pdf")
    export_id = ready_export(api, patient)
    url = link(api, patient, export_id)
    assert list(api.runtime.blob_store.keys(export_prefix(uuid.UUID(export_id))))

    assert erase(api, patient).status_code == 200

    assert_problem(api.client.get(url), 410, "export-expired")
    assert list(api.runtime.blob_store.keys(export_prefix(uuid.UUID(export_id)))) == []
    with api.session() as session:
        export = session.get(SubjectExport, uuid.UUID(export_id))
        assert export is not None
        assert export.status is ExportStatus.DELETED
        assert export.key_id is not None
        key = session.get(KeyRecord, export.key_id)
        assert key is not None
        assert (key.wrapped, key.destroy_reason) == (None, "erasure")
    assert "export.delete" in [action for action, _ in audit_trail(api, patient)]
