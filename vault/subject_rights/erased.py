"""What erasure requests (Art. 17) erased and kept, as the shredder and the retention run read it.

An erasure marks the cases it erases SHREDDING and records them (``ErasedCase``) in one
transaction; the shred itself is finished by the request, or, after a crash, by the next
retention run. Whoever finishes it reads ``ErasedCase`` with the case (then the event is
``case.erase`` and the keys go for reason "erasure"), and ``close_finished_erasures`` closes
each request once every case it erased is shredded: the register never says "completed"
while a key it promised to destroy still exists.

Kept here, apart from ``vault.subject_rights.erasure``, because the retention run imports it
and the erasure imports the retention run's shredder.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseStatus
from vault.subject_rights.models import (
    ErasedCase,
    RequestStatus,
    RetainedPart,
    RetentionGround,
    Right,
    RightsRequest,
)
from vault.subject_rights.requests import close_request

ERASURE_REASON = "erasure"  # the destroy reason of keys an erasure destroyed


def close_finished_erasures(
    session: Session,
    *,
    now: datetime,
    request_ids: Collection[uuid.UUID] | None = None,
    audit: AuditContext = AuditContext.SYSTEM,
) -> int:
    """Close open erasure requests none of whose erased cases is left unshredded: completed,
    or partially completed when they kept a part. Flushes (the caller commits); how many."""
    unshredded = (
        sa.select(col(ErasedCase.case_id))
        .join(Case, col(Case.id) == col(ErasedCase.case_id))
        .where(
            col(ErasedCase.request_id) == col(RightsRequest.id),
            col(Case.status) != CaseStatus.SHREDDED,
        )
        .exists()
    )
    statement = select(RightsRequest).where(
        col(RightsRequest.right) == Right.ERASURE,
        col(RightsRequest.status) == RequestStatus.OPEN,
        ~unshredded,
    )
    if request_ids is not None:
        statement = statement.where(col(RightsRequest.id).in_(list(request_ids)))
    closed = 0
    for request in session.exec(statement.order_by(col(RightsRequest.received_at))).all():
        kept = session.exec(
            select(col(RetainedPart.case_id)).where(RetainedPart.request_id == request.id)
        ).first()
        status = RequestStatus.COMPLETED if kept is None else RequestStatus.PARTIALLY_COMPLETED
        close_request(session, request, status=status, now=now, audit=audit)
        closed += 1
    return closed


def released_parts(session: Session) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Kept parts whose ground is gone before any retention date: open cases an erasure kept
    under a legal hold that has since been lifted. (Completed ones fall to the retention
    date.) Each as (request id, case id), to be erased now."""
    rows = session.exec(
        select(col(RetainedPart.request_id), col(RetainedPart.case_id))
        .join(Case, col(Case.id) == col(RetainedPart.case_id))
        .where(
            col(RetainedPart.ground) == RetentionGround.LEGAL_CLAIMS,
            col(Case.status) == CaseStatus.OPEN,
            col(Case.legal_hold_at).is_(None),
        )
        .order_by(col(RetainedPart.case_id))
    ).all()
    return [(request_id, case_id) for request_id, case_id in rows]
