"""Retention over HTTP: shredded data answers 410 everywhere; legal holds and the preview."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from api.routers import retention
from tests.api.test_cases import assert_problem
from tests.api.test_transfers import Forwardable, forward, forwardable
from tests.apiharness import ApiHarness, TestUser
from vault.accounts.models import Role
from vault.retention.service import RetentionReport, run_retention


@pytest.fixture
def admin_api(api: ApiHarness) -> ApiHarness:
    """The harness with the retention router mounted (until api.app.ROUTERS lists it)."""
    app: Any = api.client.app
    if not any(getattr(route, "path", "").startswith("/admin/retention") for route in app.routes):
        app.include_router(retention.router)
    return api


def complete(api: ApiHarness, coordinator: TestUser, case_id: str) -> None:
    response = api.client.post(
        f"/cases/{case_id}/complete",
        headers=coordinator.headers,
        json={"completed_at": api.clock().isoformat()},
    )
    assert response.status_code == 200, response.text


def shred_now(api: ApiHarness, *, retention_years: int = 0) -> RetentionReport:
    with api.session() as session:
        return run_retention(
            session=session,
            store=api.runtime.blob_store,
            keys=api.runtime.key_store,
            retention_years=retention_years,
            now=api.clock(),
        )


def signed_in_again(api: ApiHarness, user: TestUser) -> TestUser:
    """The same user with a fresh token (tokens expire while the clock jumps years)."""
    token = api.sign_in(user.login, user.password)
    return TestUser(user.id, user.role, user.login, user.password, token, user.patient_id)


def test_a_shredded_case_answers_410_everywhere(admin_api: ApiHarness) -> None:
    api = admin_api
    setup: Forwardable = forwardable(api)
    issued = forward(api, setup).json()
    token = issued["link_url"].rsplit("/", 1)[1]
    complete(api, setup.coordinator, setup.case_id)
    document_id = setup.document_ids[0]
    before = api.client.get(f"/documents/{document_id}/content", headers=setup.patient.headers)
    assert before.status_code == 200

    report = shred_now(api)

    assert [str(case_id) for case_id in report.shredded] == [setup.case_id]
    for user in (setup.patient, setup.coordinator):
        assert_problem(
            api.client.get(f"/documents/{document_id}/content", headers=user.headers),
            410,
            "gone",
        )
        assert_problem(api.client.get(f"/cases/{setup.case_id}", headers=user.headers), 410, "gone")
        assert_problem(
            api.client.get(f"/cases/{setup.case_id}/documents", headers=user.headers), 410, "gone"
        )
    assert_problem(api.client.get(f"/l/{token}"), 410, "gone")
    assert_problem(
        api.client.post(
            f"/l/{token}/documents/{document_id}", data={"code": issued["access_code"]}
        ),
        410,
        "gone",
    )
    listed = api.client.get("/cases", headers=setup.coordinator.headers).json()
    assert [(case["id"], case["status"]) for case in listed] == [(setup.case_id, "shredded")]


def test_legal_holds_are_for_admins_and_show_in_the_preview(admin_api: ApiHarness) -> None:
    api = admin_api
    patient = api.patient()
    coordinator = api.user(Role.COORDINATOR)
    admin = api.user(Role.ADMIN)
    case_ids = [api.client.post("/cases", headers=patient.headers).json()["id"] for _ in range(2)]
    for case_id in case_ids:
        complete(api, coordinator, case_id)
    held_id, free_id = case_ids
    hold_url = f"/admin/cases/{held_id}/legal-hold"

    assert_problem(
        api.client.post(hold_url, headers=coordinator.headers, json={"reason": "litigation"}),
        403,
        "forbidden",
    )
    refused = api.client.post(hold_url, headers=admin.headers, json={"reason": "my lawyer said"})
    assert refused.status_code == 422
    unknown = api.client.post(
        "/admin/cases/00000000-0000-4000-8000-000000000000/legal-hold",
        headers=admin.headers,
        json={"reason": "litigation"},
    )
    assert_problem(unknown, 404, "not-found")
    placed = api.client.post(hold_url, headers=admin.headers, json={"reason": "litigation"})
    assert placed.status_code == 200, placed.text
    assert placed.json()["legal_hold_reason"] == "litigation"

    due_at = api.clock() + timedelta(days=5 * 365 + 2)  # five years, one leap day, one more
    api.clock.now = due_at
    admin = signed_in_again(api, admin)
    preview = api.client.get("/admin/retention/preview", headers=admin.headers)

    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["due"] == [free_id]
    assert [(held["case_id"], held["reason"]) for held in body["held"]] == [(held_id, "litigation")]
    assert datetime.fromisoformat(body["held"][0]["held_since"]).tzinfo is not None
    coordinator = signed_in_again(api, coordinator)
    assert_problem(
        api.client.get("/admin/retention/preview", headers=coordinator.headers), 403, "forbidden"
    )

    assert shred_now(api, retention_years=5).shredded != ()
    lifted = api.client.post(f"{hold_url}/lift", headers=admin.headers)
    assert lifted.status_code == 200
    assert lifted.json()["legal_hold_at"] is None
    after = api.client.get("/admin/retention/preview", headers=admin.headers).json()
    assert (after["due"], after["held"]) == ([held_id], [])
    assert_problem(
        api.client.post(
            f"/admin/cases/{free_id}/legal-hold",
            headers=admin.headers,
            json={"reason": "litigation"},
        ),
        410,
        "gone",
    )
