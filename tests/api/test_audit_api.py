"""The audit API: admins verify, seal and page through the chain; nobody else reaches it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from tests.apiharness import ApiHarness, TestUser
from vault.accounts.models import Role
from vault.audit.checkpoints import checkpoint_key
from vault.audit.models import AuditEvent, AuditHead

PROBLEM = "https://medvault.invalid/problems/"
OPERATIONS = [
    ("post", "/admin/audit/verify"),
    ("post", "/admin/audit/checkpoints"),
    ("get", "/admin/audit/events"),
]


def events(api: ApiHarness) -> list[AuditEvent]:
    with api.session() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def head_seq(api: ApiHarness) -> int:
    with api.session() as session:
        return session.exec(select(AuditHead)).one().seq


def assert_problem(response: Any, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == PROBLEM + slug


@pytest.fixture
def admin(api: ApiHarness) -> TestUser:
    return api.user(Role.ADMIN)


def test_admin_verifies_a_sound_chain_and_the_check_is_recorded(
    api: ApiHarness, admin: TestUser
) -> None:
    before = head_seq(api)

    response = api.client.post("/admin/audit/verify", headers=admin.headers)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "ok": True,
        "events_checked": before,
        "first_broken_seq": None,
        "reason": None,
        "checkpoints_checked": 0,
    }
    last = events(api)[-1]
    assert (last.seq, last.action, last.actor_id) == (before + 1, "audit.verify", admin.id)


def test_verify_reports_a_tampered_event(api: ApiHarness, admin: TestUser) -> None:
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    with api.session() as session:
        session.execute(sa.update(table).where(table.c.seq == 1).values(outcome="denied"))
        session.commit()

    body = api.client.post("/admin/audit/verify", headers=admin.headers).json()

    assert (body["ok"], body["first_broken_seq"], body["reason"]) == (False, 1, "hash mismatch")


def test_admin_writes_a_checkpoint_of_the_head(api: ApiHarness, admin: TestUser) -> None:
    before = head_seq(api)

    response = api.client.post("/admin/audit/checkpoints", headers=admin.headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["seq"] == before
    assert body["at"].endswith("Z") or body["at"].endswith("+00:00")
    assert api.runtime.blob_store.exists(checkpoint_key(before))
    assert events(api)[-1].action == "audit.checkpoint"
    verified = api.client.post("/admin/audit/verify", headers=admin.headers).json()
    assert (verified["ok"], verified["checkpoints_checked"]) == (True, 1)


def test_admin_pages_through_events(api: ApiHarness, admin: TestUser) -> None:
    stored = events(api)
    assert len(stored) >= 2  # at least the admin's sign-in

    first = api.client.get("/admin/audit/events", params={"limit": 1}, headers=admin.headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [e["seq"] for e in page["events"]] == [1]
    assert page["next_after_seq"] == 1
    assert page["events"][0]["hash"] == stored[0].hash

    rest = api.client.get(
        "/admin/audit/events", params={"after_seq": 1, "limit": 1000}, headers=admin.headers
    ).json()
    assert [e["seq"] for e in rest["events"]] == [e.seq for e in stored[1:]] + [len(stored) + 1]
    assert rest["next_after_seq"] is None
    assert events(api)[-1].action == "audit.list"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"after_seq": -1},
        {"after_seq": 2**63},  # overflowed the SQLite driver: a 500 (found by fuzzing)
    ],
)
def test_bad_paging_is_refused_and_not_recorded(
    api: ApiHarness, admin: TestUser, params: dict[str, int]
) -> None:
    before = head_seq(api)
    response = api.client.get("/admin/audit/events", params=params, headers=admin.headers)
    assert_problem(response, 422, "invalid-request")
    assert head_seq(api) == before


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
@pytest.mark.parametrize("role", [Role.PATIENT, Role.COORDINATOR, Role.ANALYST])
def test_other_roles_are_refused(api: ApiHarness, role: Role, method: str, path: str) -> None:
    user = api.patient() if role is Role.PATIENT else api.user(role)
    before = head_seq(api)
    response = api.client.request(method, path, headers=user.headers)
    assert_problem(response, 403, "forbidden")
    assert head_seq(api) == before
    assert list(api.runtime.blob_store.keys("audit/")) == []


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_anonymous_callers_are_refused(api: ApiHarness, method: str, path: str) -> None:
    response = api.client.request(method, path)
    assert_problem(response, 401, "not-authenticated")
    bogus = {"Authorization": f"Bearer {uuid.uuid4().hex}"}
    assert_problem(api.client.request(method, path, headers=bogus), 401, "not-authenticated")
    assert list(api.runtime.blob_store.keys("audit/")) == []
