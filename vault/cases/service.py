"""Case verbs: open, list and read cases, record their outcome, mark treatment completed,
place and lift legal holds.

Every verb that reads or changes a case appends its audit event in the same transaction and
commits, so the action and its event happen together or not at all (fail closed).

``patient_id`` scoping: a verb given a patient id acts only on that patient's cases; another
patient's case answers NotFound, exactly like an unknown one (no existence oracle), and the
refused attempt is recorded with outcome "denied".
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from keys.store import KeyStore
from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.cases.models import Case, CaseOutcome, CaseStatus, LegalHoldReason
from vault.clock import as_utc
from vault.consents.models import Restriction
from vault.crypto.fields import open_field, seal_field
from vault.errors import CaseAlreadyCompleted, Gone, InvalidCaseUpdate, KeyDestroyed, NotFound
from vault.keyring import translated_key_errors
from vault.patients.service import get_patient

MAX_PAGE = 200


def _outcome_context(case_id: uuid.UUID | str) -> bytes:  # str: the id's canonical text
    return f"case:{case_id}:outcome".encode()


def open_case(
    *,
    session: Session,
    keys: KeyStore,
    patient_id: uuid.UUID,
    now: datetime,
    audit: AuditContext,
) -> Case:
    """Open a treatment request for a patient, with a fresh case key. Commits."""
    get_patient(session=session, patient_id=patient_id)
    with translated_key_errors():
        key_id = keys.create_key(session, kind="case", now=now)
    case = Case(patient_id=patient_id, key_id=key_id, created_at=now)
    session.add(case)
    session.flush()
    append_event(
        session,
        context=audit,
        action=AuditAction.CASE_OPEN,
        now=now,
        patient_id=patient_id,
        case_id=case.id,
    )
    session.commit()
    return case


def get_case(*, session: Session, case_id: uuid.UUID) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound("no such case")
    return case


def get_live_case(*, session: Session, case_id: uuid.UUID) -> Case:
    """A case whose data still exists; a shredded case answers Gone."""
    return _live(get_case(session=session, case_id=case_id))


def _live(case: Case) -> Case:
    # A case being shredded is gone already: its objects may be half deleted.
    if case.status in (CaseStatus.SHREDDING, CaseStatus.SHREDDED):
        raise Gone("this case was deleted for good at the end of its retention period")
    return case


def retention_due_at(completed_at: datetime, *, years: int) -> datetime:
    """When a case completed at ``completed_at`` is shredded: ``years`` later, in UTC.

    A 29 February falls on 1 March of a common year: never a day early.
    """
    start = as_utc(completed_at).astimezone(UTC)
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, month=3, day=1)


def retention_epoch(completed_at: datetime, *, years: int) -> str:
    """The retention epoch ("YYYY-MM") of a case: the month its retention ends in."""
    return retention_due_at(completed_at, years=years).strftime("%Y-%m")


def case_in_scope(
    *,
    session: Session,
    case_id: uuid.UUID,
    patient_id: uuid.UUID | None,
    action: AuditAction,
    now: datetime,
    audit: AuditContext,
) -> Case:
    """The case, if ``patient_id`` is None or owns it; NotFound otherwise (denial recorded).

    The denied event is committed before NotFound is raised, so it survives the rollback.
    """
    case = session.get(Case, case_id)
    if case is not None and (patient_id is None or case.patient_id == patient_id):
        return case
    if case is not None:
        append_event(
            session,
            context=audit,
            action=action,
            now=now,
            outcome="denied",
            patient_id=patient_id,
            case_id=case_id,
        )
        session.commit()
    raise NotFound("no such case")


def list_cases(
    *,
    session: Session,
    patient_id: uuid.UUID | None = None,
    status: CaseStatus | None = None,
    limit: int = 50,
    offset: int = 0,
    now: datetime,
    audit: AuditContext,
) -> list[Case]:
    """Cases newest first, optionally of one patient or in one status. Commits the event."""
    query = select(Case)
    if patient_id is not None:
        query = query.where(Case.patient_id == patient_id)
    if status is not None:
        query = query.where(Case.status == status)
    query = query.order_by(col(Case.created_at).desc(), col(Case.id).desc())
    cases = list(session.exec(query.offset(max(offset, 0)).limit(min(max(limit, 1), MAX_PAGE))))
    append_event(
        session, context=audit, action=AuditAction.CASE_LIST, now=now, patient_id=patient_id
    )
    session.commit()
    return cases


def read_case(
    *,
    session: Session,
    case_id: uuid.UUID,
    patient_id: uuid.UUID | None = None,
    now: datetime,
    audit: AuditContext,
) -> Case:
    """One case (shredded ones included: their status says so). Commits the read event."""
    case = case_in_scope(
        session=session,
        case_id=case_id,
        patient_id=patient_id,
        action=AuditAction.CASE_READ,
        now=now,
        audit=audit,
    )
    append_event(
        session,
        context=audit,
        action=AuditAction.CASE_READ,
        now=now,
        patient_id=case.patient_id,
        case_id=case.id,
    )
    session.commit()
    return case


def restricted_since(*, session: Session, cases: Sequence[Case]) -> dict[uuid.UUID, datetime]:
    """Since when processing of each case is restricted (Art. 18), by case id: the earliest
    live restriction of its patient or of the case itself. Unrestricted cases are absent.

    Coordinators see it beside each case: such a case may be stored, not forwarded.
    """
    patient_ids = {case.patient_id for case in cases}
    live = session.exec(
        select(Restriction).where(
            col(Restriction.patient_id).in_(patient_ids), col(Restriction.lifted_at).is_(None)
        )
    ).all()
    since: dict[uuid.UUID, datetime] = {}
    for case in cases:
        placed = [
            as_utc(r.placed_at)
            for r in live
            if r.patient_id == case.patient_id and r.case_id in (None, case.id)
        ]
        if placed:
            since[case.id] = min(placed)
    return since


def record_outcome(
    *,
    session: Session,
    keys: KeyStore,
    case_id: uuid.UUID,
    outcome: CaseOutcome,
    now: datetime,
    audit: AuditContext,
) -> Case:
    """Seal and store a case's outcome (replacing an earlier one). Commits.

    Allowed on open and completed cases (a final invoice often arrives after discharge);
    a shredded case answers Gone.
    """
    case = get_live_case(session=session, case_id=case_id)
    with translated_key_errors():
        case_key = keys.unsafe_key_material(session, case.key_id)
    case.outcome_sealed = seal_field(
        case_key, outcome.model_dump_json().encode(), context=_outcome_context(case.id)
    )
    case.outcome_recorded_at = now
    return _saved_with_event(session, case, action=AuditAction.CASE_OUTCOME, audit=audit, now=now)


def unsafe_case_outcome(*, session: Session, keys: KeyStore, case: Case) -> CaseOutcome | None:
    """The case's outcome, unsealed (health data: never log it); None if none was recorded.

    Raises Gone for a shredded case or a destroyed case key, DecryptionFailed if tampered.
    """
    sealed = _live(case).outcome_sealed
    if sealed is None:
        return None
    with translated_key_errors():
        case_key = keys.unsafe_key_material(session, case.key_id)
    opened = open_field(case_key, sealed, context=_outcome_context(case.id))
    return CaseOutcome.model_validate_json(opened)


def complete_case(
    *,
    session: Session,
    keys: KeyStore,
    case_id: uuid.UUID,
    completed_at: datetime,
    retention_years: int,
    now: datetime,
    audit: AuditContext,
) -> Case:
    """Mark treatment completed at ``completed_at``: the retention clock starts there.

    In the same transaction the case key moves under the root key of its retention epoch
    (the month ``retention_years`` later), so that destroying that root key once the month is
    over also defeats database backups. Completing is final: a second completion answers
    CaseAlreadyCompleted (409), a date in the future InvalidCaseUpdate (422), a shredded case
    Gone. Commits.
    """
    if completed_at.tzinfo is None:
        raise InvalidCaseUpdate("completed_at needs a time zone")
    if completed_at > now:
        raise InvalidCaseUpdate("completed_at must not be in the future")
    # Locked (PostgreSQL) so that two concurrent completions cannot both pass the check.
    case = session.exec(
        select(Case)
        .where(Case.id == case_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if case is None:
        raise NotFound("no such case")
    if _live(case).status is CaseStatus.COMPLETED or case.treatment_completed_at is not None:
        raise CaseAlreadyCompleted("this case was already marked completed")
    if completed_at < as_utc(case.created_at):
        raise InvalidCaseUpdate("completed_at must not be before the case was opened")
    case.treatment_completed_at = completed_at
    case.status = CaseStatus.COMPLETED
    session.add(case)
    _move_under_epoch_key(
        session, keys, case, epoch=retention_epoch(completed_at, years=retention_years), now=now
    )
    append_event(
        session,
        context=audit,
        action=AuditAction.CASE_COMPLETE,
        now=now,
        patient_id=case.patient_id,
        case_id=case.id,
    )
    session.commit()
    return case


def _move_under_epoch_key(
    session: Session, keys: KeyStore, case: Case, *, epoch: str, now: datetime
) -> None:
    """Re-wrap the case key under the root key of ``epoch`` (flushes; the caller commits)."""
    try:
        with translated_key_errors():
            epoch_root_key_id = keys.epoch_root_key(session, epoch=epoch, now=now)
    except KeyDestroyed:
        # That month is over and its root key already gone: the case is due at once and the
        # next retention run shreds it; until then it stays under the active root key.
        return
    with translated_key_errors():
        keys.rewrap(session, case.key_id, root_key_id=epoch_root_key_id, now=now)


def place_legal_hold(
    *,
    session: Session,
    case_id: uuid.UUID,
    reason: LegalHoldReason,
    now: datetime,
    audit: AuditContext,
) -> Case:
    """Stop the shredding of a case until the hold is lifted. Commits.

    Placing a hold on a held case replaces its reason. A case already (being) shredded
    answers Gone: nothing is left to hold.
    """
    case = _locked_live_case(session, case_id)
    case.legal_hold_at = now
    case.legal_hold_reason = reason
    session.add(case)
    append_event(
        session,
        context=audit,
        action=AuditAction.LEGAL_HOLD_PLACE,
        now=now,
        patient_id=case.patient_id,
        case_id=case.id,
        purpose=reason,
    )
    session.commit()
    return case


def lift_legal_hold(
    *, session: Session, case_id: uuid.UUID, now: datetime, audit: AuditContext
) -> Case:
    """Lift a case's legal hold (harmless when none is placed); if its retention period is
    over, the next retention run shreds it. Commits."""
    case = _locked_live_case(session, case_id)
    case.legal_hold_at = None
    case.legal_hold_reason = None
    return _saved_with_event(
        session, case, action=AuditAction.LEGAL_HOLD_LIFT, audit=audit, now=now
    )


def _locked_live_case(session: Session, case_id: uuid.UUID) -> Case:
    """The case, re-read and locked (PostgreSQL) so a concurrent shred start cannot slip by."""
    case = session.exec(
        select(Case)
        .where(Case.id == case_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if case is None:
        raise NotFound("no such case")
    return _live(case)


def _saved_with_event(
    session: Session, case: Case, *, action: AuditAction, audit: AuditContext, now: datetime
) -> Case:
    """Commit a change to a case together with the audit event that records it (fail closed)."""
    session.add(case)
    append_event(
        session, context=audit, action=action, now=now, patient_id=case.patient_id, case_id=case.id
    )
    session.commit()
    return case
