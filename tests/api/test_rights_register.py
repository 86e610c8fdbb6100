"""The register of data-subject requests: each patient sees their own, the privacy officer
everyone's, with due dates (one month, Art. 12(3)), the overdue flag and the due-soon view."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, func, select

from tests.api.test_cases import assert_problem
from tests.apiharness import ApiHarness, TestUser
from tests.factories import NOW
from vault.accounts.models import Role
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.subject_rights.models import RequestStatus, Right, RightsRequest
from vault.subject_rights.requests import close_request, open_request


def events(api: ApiHarness, *actions: str) -> list[AuditEvent]:
    """The audit events of these actions (all of them without any), in order."""
    with api.session() as session:
        statement = select(AuditEvent).order_by(col(AuditEvent.seq))
        if actions:
            statement = statement.where(col(AuditEvent.action).in_(actions))
        return list(session.exec(statement).all())


def rights_events(api: ApiHarness) -> list[tuple[str, str | None, uuid.UUID | None]]:
    """(action, purpose, patient id) of every register event, in order."""
    return [
        (event.action, event.purpose, event.patient_id)
        for event in events(api, "rights.request", "rights.complete")
    ]


def request_count(api: ApiHarness) -> int:
    with api.session() as session:
        return session.exec(select(func.count()).select_from(RightsRequest)).one()


def register(api: ApiHarness, patient: TestUser) -> list[dict[str, Any]]:
    response = api.client.get("/me/rights-requests", headers=patient.headers)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


def stamp(api: ApiHarness) -> str:
    """The clock's time as the API writes it."""
    return api.clock().strftime("%Y-%m-%dT%H:%M:%SZ")


def refreshed(api: ApiHarness, user: TestUser) -> TestUser:
    """The user signed in again (after the clock moved past their access token's lifetime)."""
    return dataclasses.replace(user, access_token=api.sign_in(user.login, user.password))


def stored_request(
    api: ApiHarness,
    patient: TestUser,
    right: Right,
    *,
    received_at: datetime,
    closed: bool = False,
) -> str:
    """A request as the rights verbs record it, received at ``received_at``."""
    assert patient.patient_id is not None
    with api.session() as session:
        request = open_request(
            session,
            patient_id=patient.patient_id,
            right=right,
            now=received_at,
            audit=AuditContext.SYSTEM,
        )
        if closed:
            close_request(
                session,
                request,
                status=RequestStatus.COMPLETED,
                now=received_at,
                audit=AuditContext.SYSTEM,
            )
        session.commit()
        return str(request.id)


def test_a_patient_sees_their_own_requests_latest_first(api: ApiHarness) -> None:
    patient, other = api.patient(), api.patient()
    first = stored_request(api, patient, Right.ACCESS, received_at=NOW - timedelta(days=3))
    second = stored_request(
        api, patient, Right.RESTRICTION, received_at=NOW - timedelta(days=1), closed=True
    )
    stored_request(api, other, Right.ERASURE, received_at=NOW - timedelta(days=2))

    mine = register(api, patient)

    assert [entry["id"] for entry in mine] == [second, first]
    assert mine[1] == {
        "id": first,
        "patient_id": str(patient.patient_id),
        "right": "access",
        "status": "open",
        "received_at": "2026-11-21T09:00:00Z",
        "due_at": "2026-12-21T09:00:00Z",
        "completed_at": None,
        "overdue": False,
    }
    assert (mine[0]["status"], mine[0]["completed_at"]) == ("completed", "2026-11-23T09:00:00Z")
    stranger = api.patient()
    assert register(api, stranger) == []
    listed = [(event.patient_id, event.actor_id) for event in events(api, "rights.list")]
    assert listed == [(patient.patient_id, patient.id), (stranger.patient_id, stranger.id)]


def test_a_request_is_overdue_once_its_month_has_passed(api: ApiHarness) -> None:
    patient = api.patient()
    stored_request(api, patient, Right.ACCESS, received_at=NOW - timedelta(days=31))
    stored_request(api, patient, Right.ERASURE, received_at=NOW - timedelta(days=40), closed=True)

    overdue = {entry["right"]: entry["overdue"] for entry in register(api, patient)}

    # Received on 24 October: due on 24 November at the same hour, overdue from then on.
    assert overdue == {"access": False, "erasure": False}
    api.clock.advance(seconds=1)
    overdue = {entry["right"]: entry["overdue"] for entry in register(api, patient)}
    assert overdue == {"access": True, "erasure": False}  # a closed request is never overdue


def test_the_privacy_officer_sees_open_due_soon_and_all_requests(api: ApiHarness) -> None:
    admin, alice, bob = api.user(Role.ADMIN), api.patient(), api.patient()
    overdue = stored_request(api, alice, Right.ACCESS, received_at=NOW - timedelta(days=40))
    due_soon = stored_request(api, bob, Right.ERASURE, received_at=NOW - timedelta(days=25))
    later = stored_request(api, alice, Right.PORTABILITY, received_at=NOW - timedelta(days=1))
    closed = stored_request(
        api, bob, Right.RECTIFICATION, received_at=NOW - timedelta(days=50), closed=True
    )

    def ids(query: str) -> list[str]:
        response = api.client.get(f"/admin/rights-requests{query}", headers=admin.headers)
        assert response.status_code == 200, response.text
        return [entry["id"] for entry in response.json()]

    assert ids("") == [overdue, due_soon, later]  # open ones, the soonest due first
    assert ids("?state=open") == [overdue, due_soon, later]
    assert ids("?due_soon=true") == [overdue, due_soon]  # within 7 days, overdue included
    assert ids("?state=all") == [closed, overdue, due_soon, later]
    assert ids("?state=all&due_soon=true") == [overdue, due_soon]
    one = api.client.get(f"/admin/rights-requests/{overdue}", headers=admin.headers)
    assert one.status_code == 200
    assert one.json()["patient_id"] == str(alice.patient_id)
    assert one.json()["overdue"] is True
    listed = events(api, "rights.list")
    assert [event.patient_id for event in listed] == [None] * 5 + [alice.patient_id]
    assert {event.actor_id for event in listed} == {admin.id}


def test_the_register_is_the_privacy_officers_alone(api: ApiHarness) -> None:
    patient = api.patient()
    request_id = stored_request(api, patient, Right.ACCESS, received_at=NOW)

    for role in (Role.COORDINATOR, Role.ANALYST):
        user = api.user(role)
        for path in ("/admin/rights-requests", f"/admin/rights-requests/{request_id}"):
            assert_problem(api.client.get(path, headers=user.headers), 403, "forbidden")
        assert_problem(
            api.client.get("/me/rights-requests", headers=user.headers), 403, "forbidden"
        )
    for path in ("/admin/rights-requests", f"/admin/rights-requests/{request_id}"):
        assert_problem(api.client.get(path, headers=patient.headers), 403, "forbidden")
    assert_problem(api.client.get("/me/rights-requests"), 401, "not-authenticated")
    assert events(api, "rights.list") == []


def test_unknown_requests_and_bad_filters_are_refused(api: ApiHarness) -> None:
    admin = api.user(Role.ADMIN)

    unknown = api.client.get(f"/admin/rights-requests/{uuid.uuid4()}", headers=admin.headers)
    bad_state = api.client.get("/admin/rights-requests?state=closed", headers=admin.headers)
    bad_flag = api.client.get("/admin/rights-requests?due_soon=maybe", headers=admin.headers)

    assert_problem(unknown, 404, "not-found")
    assert_problem(bad_state, 422, "invalid-request")
    assert_problem(bad_flag, 422, "invalid-request")
    assert events(api, "rights.list") == []
    assert request_count(api) == 0
