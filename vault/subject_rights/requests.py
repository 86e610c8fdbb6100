"""The register of data-subject requests: every exercise of a right is recorded with its due
date (one month from receipt, Art. 12(3)) and its outcome, each step an audit event.

The verbs of each right open a request, do their work and close it in one transaction; an
export (Art. 15/20) closes its request when the worker has built it.
"""

import calendar
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.clock import as_utc
from vault.errors import NotFound
from vault.patients.service import get_patient
from vault.subject_rights.models import RequestStatus, Right, RightsRequest

FINAL_STATUSES = frozenset(
    {RequestStatus.COMPLETED, RequestStatus.PARTIALLY_COMPLETED, RequestStatus.FAILED}
)


def response_due(received_at: datetime) -> datetime:
    """One month after receipt (Art. 12(3)): the same day of the next month, or its last day."""
    carry, month_index = divmod(received_at.month, 12)
    year, month = received_at.year + carry, month_index + 1
    day = min(received_at.day, calendar.monthrange(year, month)[1])
    return received_at.replace(year=year, month=month, day=day)


def open_request(
    session: Session, *, patient_id: uuid.UUID, right: Right, now: datetime, audit: AuditContext
) -> RightsRequest:
    """Record a request as received (flushes with its audit event; the caller commits)."""
    get_patient(session=session, patient_id=patient_id)
    request = RightsRequest(
        patient_id=patient_id, right=right, received_at=now, due_at=response_due(now)
    )
    session.add(request)
    append_event(
        session,
        context=audit,
        action=AuditAction.RIGHTS_REQUEST,
        now=now,
        patient_id=patient_id,
        purpose=right.value,
    )
    session.flush()
    return request


def close_request(
    session: Session,
    request: RightsRequest,
    *,
    status: RequestStatus,
    now: datetime,
    audit: AuditContext,
) -> RightsRequest:
    """Record a request's outcome (flushes with its audit event; the caller commits).

    Closing a closed request changes nothing: a worker that runs twice closes it once.
    """
    if status not in FINAL_STATUSES:
        raise ValueError(f"a request closes as one of {sorted(FINAL_STATUSES)}")
    if request.status in FINAL_STATUSES:
        return request
    request.status = status
    request.completed_at = now
    session.add(request)
    append_event(
        session,
        context=audit,
        action=AuditAction.RIGHTS_COMPLETE,
        now=now,
        outcome="ok" if status is not RequestStatus.FAILED else "refused",
        patient_id=request.patient_id,
        purpose=request.right.value,
    )
    session.flush()
    return request


def list_requests(
    session: Session,
    *,
    now: datetime,
    audit: AuditContext,
    patient_id: uuid.UUID | None = None,
    open_only: bool = False,
    due_within: timedelta | None = None,
    newest_first: bool = False,
) -> Sequence[RightsRequest]:
    """Requests, the soonest due first (``newest_first``: the latest received first): one
    patient's (``patient_id``) or everyone's (the privacy officer); ``open_only`` leaves out
    closed ones, ``due_within`` those due later than that from ``now`` (overdue ones
    included). Commits its audit event."""
    received = col(RightsRequest.received_at)
    statement = select(RightsRequest).order_by(
        *(
            (received.desc(), col(RightsRequest.id).desc())
            if newest_first
            else (col(RightsRequest.due_at), received)
        )
    )
    if patient_id is not None:
        statement = statement.where(RightsRequest.patient_id == patient_id)
    if open_only or due_within is not None:
        statement = statement.where(RightsRequest.status == RequestStatus.OPEN)
    if due_within is not None:
        statement = statement.where(col(RightsRequest.due_at) <= now + due_within)
    requests = session.exec(statement).all()
    append_event(
        session,
        context=audit,
        action=AuditAction.RIGHTS_LIST,
        now=now,
        patient_id=patient_id,
    )
    session.commit()
    return requests


def get_request(
    session: Session, *, request_id: uuid.UUID, patient_id: uuid.UUID | None = None
) -> RightsRequest:
    """One request; with ``patient_id`` (a patient asking), another patient's is NotFound."""
    request = session.get(RightsRequest, request_id)
    if request is None or (patient_id is not None and request.patient_id != patient_id):
        raise NotFound("no such request")
    return request


def read_request(
    session: Session, *, request_id: uuid.UUID, now: datetime, audit: AuditContext
) -> RightsRequest:
    """One request, for the privacy officer (NotFound if unknown). Commits its audit event."""
    request = get_request(session, request_id=request_id)
    append_event(
        session,
        context=audit,
        action=AuditAction.RIGHTS_LIST,
        now=now,
        patient_id=request.patient_id,
        purpose=request.right.value,
    )
    session.commit()
    return request


def is_overdue(request: RightsRequest, *, now: datetime) -> bool:
    return request.status is RequestStatus.OPEN and as_utc(request.due_at) < now
