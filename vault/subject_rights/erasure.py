"""Erasure (GDPR Art. 17): the patient asks, the product erases what it may at once and says
what it must keep, on which ground and until when.

The rules, case by case:

- A case under a legal hold is kept: ground ``art17-3-e`` (the establishment, exercise or
  defence of legal claims), until null: as long as the hold lasts. Once the hold is lifted,
  an open case is erased by the next retention run; a completed one falls to the next rule.
- A completed case is kept until its retention date (``retention_due_at``, ``retention_years``
  after completion): ground ``art17-3-b``, the legal duty to keep treatment and billing
  records that the retention period implements. On that date the retention run shreds it as
  any other (and, with the patient's last case, their patient key).
- Every other case (open, or completed with its retention date passed) is erased at once,
  by the crash-safe path of the retention shred (``vault.retention.service``): marked
  SHREDDING and recorded as erased (``ErasedCase``) in one committed transaction, then its
  objects deleted (every version), its sealed fields emptied, its case key destroyed, and a
  ``case.erase`` event. A kill at any point leaves each case untouched or marked (unreadable
  from then on) or fully erased; the next retention run finishes what is marked.

Then the patient: with nothing kept, the patient key is destroyed and the sealed identity
emptied (``patient.erase``); with something kept, the patient key stays (the kept cases are
theirs) and a patient-wide restriction (Art. 18, reason ``erasure-retained``) blocks every new
transfer, link and QA use of what is kept until it falls due; ``RetainedPart`` rows record
what, why and until when. Either way the patient's accounts are closed (disabled, tokens
revoked, login digest replaced: the address may register again), the consents of erased cases
are withdrawn, their survey answers deleted, and every export of the patient deleted.

A destroyed key still sits wrapped in database copies taken before; ``KeyStore.rotation_due``
sees it and the daily root-key run rotates the active root key, whose retired predecessor is
destroyed once the backup window has passed: from then on no copy opens anything erased.

The request (``Right.ERASURE``) is opened with the intent, in the transaction that marks the
cases; it is closed, ``completed`` or ``partially-completed`` when a part was kept, once every
erased case is shredded (by this call, or by the run that finishes a crashed one). Every step
is an audit event carrying ids and ``purpose="erasure"`` only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from keys.store import KeyStore
from vault.accounts.service import close_patient_accounts
from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.cases.models import Case, CaseStatus
from vault.cases.service import retention_due_at
from vault.clock import as_utc
from vault.consents.models import Consent, RestrictionReason
from vault.consents.service import add_restriction
from vault.errors import ErasureConflict, Gone
from vault.patients.models import Patient
from vault.patients.service import get_patient
from vault.retention.service import (
    erase_patient_if_no_case_left,
    finish_shred,
    mark_shredding,
)
from vault.storage.interfaces import BlobStore
from vault.subject_rights.erased import ERASURE_REASON, close_finished_erasures
from vault.subject_rights.exports import delete_exports_of_patient
from vault.subject_rights.models import (
    ErasedCase,
    RequestStatus,
    RetainedPart,
    RetentionGround,
    Right,
    RightsRequest,
)
from vault.subject_rights.requests import get_request, open_request
from vault.surveys.models import Survey

TREATMENT_RECORDS = "treatment-and-billing-records"  # the reason of an art17-3-b kept part
PURPOSE = Right.ERASURE.value


@dataclass(frozen=True)
class KeptPart:
    """A case the erasure had to keep: on which ground, for which reason, until when."""

    case_id: uuid.UUID
    ground: RetentionGround
    reason: str  # a LegalHoldReason value, or TREATMENT_RECORDS
    until: datetime | None  # None while a legal hold lasts

    @classmethod
    def of(cls, part: RetainedPart) -> KeptPart:
        until = as_utc(part.until) if part.until is not None else None
        return cls(part.case_id, part.ground, part.reason, until)


@dataclass(frozen=True)
class ErasureOutcome:
    """What an erasure did: the request, the cases erased, the parts kept, the patient."""

    request: RightsRequest
    erased_cases: tuple[uuid.UUID, ...]
    kept: tuple[KeptPart, ...]
    patient_erased: bool

    @property
    def status(self) -> RequestStatus:
        """The outcome: partially completed when a part was kept (also before the request
        is closed, if a shred was left to the retention run)."""
        return RequestStatus.PARTIALLY_COMPLETED if self.kept else RequestStatus.COMPLETED


@dataclass(frozen=True)
class _Plan:
    erase: list[uuid.UUID]
    kept: list[KeptPart]


def erase_patient_data(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    patient_id: uuid.UUID,
    retention_years: int,
    now: datetime,
    audit: AuditContext,
) -> ErasureOutcome:
    """Serve an erasure request of ``patient_id`` (see the module docstring). Commits.

    Raises Gone for a patient already erased, ErasureConflict when a case changed while the
    erasure was planned (nothing done), StorageUnavailable or KmsUnavailable when a shred
    could not be finished (the intent is committed: the retention run finishes it).
    """
    patient = get_patient(session=session, patient_id=patient_id)
    if patient.erased_at is not None:
        raise Gone("this patient's data was erased")
    request = open_request(
        session, patient_id=patient_id, right=Right.ERASURE, now=now, audit=audit
    )
    request_id = request.id
    plan = _plan(session, patient_id, retention_years=retention_years, now=now)
    _record_intent(session, request_id=request_id, plan=plan)
    if plan.kept:
        # Restrict (Art. 18) the patient's kept data until it falls due.
        add_restriction(
            session,
            patient_id=patient_id,
            case_id=None,
            reason=RestrictionReason.ERASURE_RETAINED,
            now=now,
            audit=audit,
            purpose=PURPOSE,
        )
    _withdraw_consents(session, patient_id=patient_id, case_ids=plan.erase, now=now, audit=audit)
    if plan.erase:  # their free text is sealed under the case key anyway
        session.execute(
            sa.delete(Survey)
            .where(col(Survey.case_id).in_(plan.erase))
            .execution_options(synchronize_session=False)
        )
    delete_exports_of_patient(
        session=session, store=store, keys=keys, patient_id=patient_id, now=now
    )
    close_patient_accounts(session, patient_id=patient_id, now=now, audit=audit, purpose=PURPOSE)
    if not plan.erase and not plan.kept:
        erase_patient_if_no_case_left(
            session, keys, patient_id, now=now, reason=ERASURE_REASON, audit=audit
        )
    close_finished_erasures(session, now=now, request_ids=[request_id], audit=audit)
    session.commit()  # the intent: from here on every erased case answers Gone

    for case_id in plan.erase:
        finish_shred(session=session, store=store, keys=keys, case_id=case_id, now=now, audit=audit)
    close_finished_erasures(session, now=now, request_ids=[request_id], audit=audit)
    session.commit()
    erased = session.get(Patient, patient_id, populate_existing=True)
    return ErasureOutcome(
        request=get_request(session, request_id=request_id),
        erased_cases=tuple(plan.erase),
        kept=tuple(plan.kept),
        patient_erased=erased is not None and erased.erased_at is not None,
    )


@dataclass(frozen=True)
class ErasurePreview:
    """What an erasure asked for now would do: the cases erased at once, and those kept."""

    erased_cases: tuple[uuid.UUID, ...]
    kept: tuple[KeptPart, ...]


def preview_erasure(
    session: Session, *, patient_id: uuid.UUID, retention_years: int, now: datetime
) -> ErasurePreview:
    """The plan :func:`erase_patient_data` would follow now, for the patient to read before
    confirming (reads only: no lock, no event; the erasure plans anew when it is asked)."""
    get_patient(session=session, patient_id=patient_id)
    plan = _plan(session, patient_id, retention_years=retention_years, now=now, lock=False)
    return ErasurePreview(erased_cases=tuple(plan.erase), kept=tuple(plan.kept))


def retained_parts(
    session: Session, *, request_id: uuid.UUID, now: datetime, audit: AuditContext
) -> list[KeptPart]:
    """What an erasure request kept, for the privacy officer (an empty list for a request that
    kept nothing, or of another right). NotFound for an unknown request. Commits the
    ``rights.list`` event."""
    request = get_request(session, request_id=request_id)
    parts = session.exec(
        select(RetainedPart)
        .where(RetainedPart.request_id == request_id)
        .order_by(col(RetainedPart.case_id))
    ).all()
    append_event(
        session,
        context=audit,
        action=AuditAction.RIGHTS_LIST,
        now=now,
        patient_id=request.patient_id,
        purpose=request.right.value,
    )
    session.commit()
    return [KeptPart.of(part) for part in parts]


# -- the steps ---------------------------------------------------------------------------------


def _plan(
    session: Session,
    patient_id: uuid.UUID,
    *,
    retention_years: int,
    now: datetime,
    lock: bool = True,
) -> _Plan:
    """Sort the patient's cases into erased now and kept (see the module docstring).

    Cases already being shredded or shredded are left to the shred under way. The rows are
    locked (PostgreSQL) so a legal hold cannot be placed between the plan and the marking;
    ``lock=False`` for a preview only.
    """
    query = (
        select(Case)
        .where(
            Case.patient_id == patient_id,
            col(Case.status).in_([CaseStatus.OPEN, CaseStatus.COMPLETED]),
        )
        .order_by(col(Case.created_at), col(Case.id))
    )
    if lock:
        query = query.with_for_update()
    cases = session.exec(query.execution_options(populate_existing=True)).all()
    erase: list[uuid.UUID] = []
    kept: list[KeptPart] = []
    for case in cases:
        if case.legal_hold_at is not None and case.legal_hold_reason is not None:
            reason = case.legal_hold_reason.value
            kept.append(KeptPart(case.id, RetentionGround.LEGAL_CLAIMS, reason, None))
            continue
        if case.treatment_completed_at is not None:
            due = retention_due_at(case.treatment_completed_at, years=retention_years)
            if due > now:
                kept.append(
                    KeptPart(case.id, RetentionGround.LEGAL_OBLIGATION, TREATMENT_RECORDS, due)
                )
                continue
        erase.append(case.id)
    return _Plan(erase=erase, kept=kept)


def _record_intent(session: Session, *, request_id: uuid.UUID, plan: _Plan) -> None:
    """Record what is erased and kept, and mark the erased cases SHREDDING (flushes)."""
    for case_id in plan.erase:
        session.add(ErasedCase(case_id=case_id, request_id=request_id))
    for part in plan.kept:
        session.add(
            RetainedPart(
                request_id=request_id,
                case_id=part.case_id,
                ground=part.ground,
                reason=part.reason,
                until=part.until,
            )
        )
    session.flush()
    marked = mark_shredding(session, plan.erase, statuses=(CaseStatus.OPEN, CaseStatus.COMPLETED))
    if marked != len(plan.erase):  # a hold was placed since the plan was read (SQLite)
        session.rollback()
        raise ErasureConflict("a case changed while the erasure was prepared: nothing was erased")


def _withdraw_consents(
    session: Session,
    *,
    patient_id: uuid.UUID,
    case_ids: Sequence[uuid.UUID],
    now: datetime,
    audit: AuditContext,
) -> None:
    """Withdraw the live consents given for the erased cases, one event each (flushes)."""
    consents = session.exec(
        select(Consent)
        .where(col(Consent.case_id).in_(case_ids), col(Consent.withdrawn_at).is_(None))
        .order_by(col(Consent.given_at), col(Consent.id))
    ).all()
    for consent in consents:
        consent.withdrawn_at = now
        session.add(consent)
        append_event(
            session,
            context=audit,
            action=AuditAction.CONSENT_WITHDRAW,
            now=now,
            patient_id=patient_id,
            case_id=consent.case_id,
            purpose=PURPOSE,
        )
    session.flush()
