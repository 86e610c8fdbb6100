"""The transfers API: forwarding with a legal basis, refusals that say why, revocation, and
the patient's list of disclosures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import func, select

from tests.api.test_cases import assert_problem, open_case
from tests.apiharness import ApiHarness, TestUser
from tests.factories import PARTNER_EMAIL, PARTNER_NAME, pdf_bytes, png_bytes
from vault.accounts.models import Role
from vault.audit.models import AuditEvent
from vault.links.models import Link
from vault.transfers.models import Transfer, TransferDocument


@dataclass
class Forwardable:
    """A patient's case with two documents and a consent, a partner, and a coordinator."""

    patient: TestUser
    coordinator: TestUser
    admin: TestUser
    case_id: str
    document_ids: list[str]
    partner_id: str
    consent_id: str

    def request(self, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "document_ids": self.document_ids,
            "partner_id": self.partner_id,
            "purpose": "treatment-check",
            "legal_basis": "art9-2-a",
            "consent_id": self.consent_id,
        }
        body.update(overrides)
        return body


def upload(api: ApiHarness, user: TestUser, case_id: str, data: bytes, name: str) -> str:
    response = api.client.put(
        f"/cases/{case_id}/uploads/{name}?kind=record", headers=user.headers, content=data
    )
    assert response.status_code == 201, response.text
    document_id: str = response.json()["id"]
    return document_id


def create_partner(api: ApiHarness, admin: TestUser, **fields: str) -> Any:
    body = {"kind": "clinic", "name": PARTNER_NAME, "contact_email": PARTNER_EMAIL, **fields}
    return api.client.post("/admin/partners", headers=admin.headers, json=body)


def forwardable(api: ApiHarness) -> Forwardable:
    patient = api.patient()
    coordinator = api.user(Role.COORDINATOR)
    admin = api.user(Role.ADMIN)
    case_id = open_case(api, patient)
    documents = [
        upload(api, patient, case_id, pdf_bytes(), "befund.pdf"),
        upload(api, patient, case_id, png_bytes(), "scan.png"),
    ]
    partner = create_partner(api, admin)
    assert partner.status_code == 201, partner.text
    consent = api.client.post(
        f"/cases/{case_id}/consents",
        headers=patient.headers,
        json={"text_version": "forwarding-2026-11"},
    )
    assert consent.status_code == 201, consent.text
    return Forwardable(
        patient, coordinator, admin, case_id, documents, partner.json()["id"], consent.json()["id"]
    )


def forward(api: ApiHarness, setup: Forwardable, **overrides: Any) -> Any:
    return api.client.post(
        f"/cases/{setup.case_id}/transfers",
        headers=setup.coordinator.headers,
        json=setup.request(**overrides),
    )


def assert_nothing_forwarded(api: ApiHarness) -> None:
    with api.session() as session:
        for model in (Transfer, TransferDocument, Link):
            assert session.exec(select(func.count()).select_from(model)).one() == 0


def audit_actions(api: ApiHarness) -> list[tuple[str, str]]:
    with api.session() as session:
        rows = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()  # type: ignore[arg-type]
        return [(event.action, event.outcome) for event in rows]


def test_a_coordinator_forwards_and_the_partner_is_mailed_the_link_only(api: ApiHarness) -> None:
    setup = forwardable(api)

    response = forward(api, setup, expires_in_days=3, max_downloads=2)

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"transfer", "link_url", "access_code", "expires_at", "notified"}
    assert body["transfer"]["document_ids"] == setup.document_ids
    assert body["transfer"]["legal_basis"] == "art9-2-a"
    assert body["link_url"].startswith("http://127.0.0.1:8000/l/")
    assert body["expires_at"] == "2026-11-27T09:00:00Z"
    assert body["notified"] is True
    [message] = [m for m in api.notifier.messages if m.to == PARTNER_EMAIL]
    assert body["link_url"] in message.body
    assert body["access_code"] not in message.body
    assert body["access_code"] not in message.subject
    assert ("transfer.create", "ok") in audit_actions(api)


@pytest.mark.parametrize(
    ("overrides", "setup_step", "slug"),
    [
        ({"consent_id": None}, None, "legal-basis-missing"),
        ({"legal_basis": "art6-1-a", "consent_id": None}, None, "legal-basis-missing"),
        ({}, "withdraw", "consent-withdrawn"),
        ({}, "restrict", "processing-restricted"),
        ({"legal_basis": "art9-2-h", "consent_id": None}, "restrict", "processing-restricted"),
    ],
)
def test_refusals_say_why_and_store_nothing_but_their_event(
    api: ApiHarness, overrides: dict[str, Any], setup_step: str | None, slug: str
) -> None:
    setup = forwardable(api)
    if setup_step == "withdraw":
        withdrawn = api.client.post(
            f"/cases/{setup.case_id}/consents/{setup.consent_id}/withdraw",
            headers=setup.patient.headers,
        )
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["withdrawn_at"] is not None
    elif setup_step == "restrict":
        placed = api.client.post(
            "/admin/restrictions",
            headers=setup.admin.headers,
            json={"patient_id": str(setup.patient.patient_id)},
        )
        assert placed.status_code == 201, placed.text
    notified_before = len(api.notifier.messages)

    response = forward(api, setup, **overrides)

    assert_problem(response, 409, slug)
    assert_nothing_forwarded(api)
    assert audit_actions(api)[-1] == ("transfer.refused", "refused")
    assert len(api.notifier.messages) == notified_before


def test_lifting_the_restriction_allows_forwarding_again(api: ApiHarness) -> None:
    setup = forwardable(api)
    placed = api.client.post(
        "/admin/restrictions",
        headers=setup.admin.headers,
        json={"patient_id": str(setup.patient.patient_id), "case_id": setup.case_id},
    )
    assert_problem(forward(api, setup), 409, "processing-restricted")

    lifted = api.client.post(
        f"/admin/restrictions/{placed.json()['id']}/lift", headers=setup.admin.headers
    )

    assert lifted.status_code == 200
    assert forward(api, setup).status_code == 201


def test_documents_of_another_case_are_not_found(api: ApiHarness) -> None:
    setup = forwardable(api)
    other_case = open_case(api, setup.patient)
    foreign = upload(api, setup.patient, other_case, png_bytes(seed=2), "other.png")

    response = forward(api, setup, document_ids=[setup.document_ids[0], foreign])

    assert_problem(response, 404, "not-found")
    assert_nothing_forwarded(api)


@pytest.mark.parametrize(
    "overrides",
    [
        {"document_ids": []},
        {"expires_in_days": 31},
        {"expires_in_days": 0},
        {"expires_in_days": 10**20},  # overflowed the date arithmetic: a 500 (found by fuzzing)
        {"max_downloads": 0},
        {"purpose": "marketing"},
        {"legal_basis": "art6-1-e"},
    ],
)
def test_invalid_requests_are_refused(api: ApiHarness, overrides: dict[str, Any]) -> None:
    setup = forwardable(api)

    response = forward(api, setup, **overrides)

    assert response.status_code == 422, response.text
    assert response.json()["type"].rsplit("/", 1)[1] in {"invalid-request", "invalid-transfer"}
    assert_nothing_forwarded(api)


def test_only_coordinators_forward(api: ApiHarness) -> None:
    setup = forwardable(api)

    for user in (setup.patient, setup.admin, api.user(Role.ANALYST)):
        response = api.client.post(
            f"/cases/{setup.case_id}/transfers", headers=user.headers, json=setup.request()
        )
        assert_problem(response, 403, "forbidden")
    assert_problem(
        api.client.post(f"/cases/{setup.case_id}/transfers", json=setup.request()),
        401,
        "not-authenticated",
    )
    assert_nothing_forwarded(api)


def test_list_and_revoke(api: ApiHarness) -> None:
    setup = forwardable(api)
    created = forward(api, setup).json()
    transfer_id = created["transfer"]["id"]

    revoked = api.client.post(f"/transfers/{transfer_id}/revoke", headers=setup.coordinator.headers)
    listed = api.client.get(f"/cases/{setup.case_id}/transfers", headers=setup.coordinator.headers)

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] == "2026-11-24T09:00:00Z"
    assert listed.status_code == 200
    [entry] = listed.json()
    assert (entry["id"], entry["revoked_at"]) == (transfer_id, "2026-11-24T09:00:00Z")
    assert entry["link"] == {
        "expires_at": "2026-12-01T09:00:00Z",
        "max_downloads": 5,
        "downloads": 0,
        "locked": False,
    }
    token = created["link_url"].rsplit("/", 1)[1]
    assert_problem(api.client.get(f"/l/{token}"), 410, "link-revoked")
    assert_problem(
        api.client.post(f"/transfers/{transfer_id}/revoke", headers=setup.patient.headers),
        403,
        "forbidden",
    )


def test_a_patient_sees_every_disclosure_and_download_of_their_own_data_only(
    api: ApiHarness,
) -> None:
    setup = forwardable(api)
    created = forward(api, setup).json()
    token = created["link_url"].rsplit("/", 1)[1]
    api.clock.advance(minutes=10)  # within the access tokens' lifetime
    fetched = api.client.post(
        f"/l/{token}/documents/{setup.document_ids[0]}", data={"code": created["access_code"]}
    )
    assert fetched.status_code == 200
    other_patient = api.patient()

    mine = api.client.get("/me/disclosures", headers=setup.patient.headers)
    theirs = api.client.get("/me/disclosures", headers=other_patient.headers)

    assert mine.status_code == 200
    [disclosure] = mine.json()
    assert disclosure["partner"] == {"id": setup.partner_id, "kind": "clinic", "name": PARTNER_NAME}
    assert [d["id"] for d in disclosure["documents"]] == setup.document_ids
    assert (disclosure["purpose"], disclosure["legal_basis"]) == ("treatment-check", "art9-2-a")
    assert disclosure["downloads"] == [
        {"document_id": setup.document_ids[0], "at": "2026-11-24T09:10:00Z"}
    ]
    assert theirs.json() == []
    assert_problem(
        api.client.get("/me/disclosures", headers=setup.coordinator.headers), 403, "forbidden"
    )
