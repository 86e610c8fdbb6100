"""Retention: crypto-shredding cases whose retention period is over, and what goes with it.

A case is due when its treatment was completed ``retention_years`` ago
(``vault.cases.service.retention_due_at``), it is not shredded and no legal hold is placed.

Shredding one case is crash-safe and idempotent, in three steps:

1. intent: the case is marked SHREDDING and committed. From then on every reader answers
   Gone, and a later run finds the case and finishes it.
2. objects: every object of the case is deleted, all versions (``BlobStore.delete``), those
   its document rows name and any other under its prefix (an upload that never got a row).
3. one final transaction: the case key becomes a tombstone, the sealed outcome (diagnoses,
   result, invoice) and the documents' wrapped data keys, sealed file names and plaintext
   digests are emptied, documents and case are marked shredded, a ``case.shred`` event is
   appended; a patient left with no unshredded case loses their patient key too
   (``patient.erase``). A compare-and-swap on SHREDDING -> SHREDDED makes a second finisher
   a no-op, so no event is ever written twice.

A kill at any point leaves a case untouched (before 1), or marked and unreadable with
objects possibly gone but its key alive (1-3, finished by the next run), or fully shredded.

The same three steps erase the cases of an erasure request (Art. 17,
``vault.subject_rights.erasure``): the request marks them SHREDDING and records them
(``ErasedCase``) in one transaction, then finishes them here. A shred the request could not
finish (a crash, the store down) is finished by the next run like any other, recorded as
``case.erase`` with its keys destroyed for reason "erasure"; the run then closes each erasure
request whose erased cases are all shredded, and erases now the open cases an erasure kept
under a legal hold that has since been lifted.

After the shreds, each retention epoch whose month is over loses its root key
(``KeyStore.destroy_epoch``) once no live key is left under it; held cases and cases not due
(retention_years raised since completion) are first moved under the active root key.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from keys.models import KeyRecord, RootKeyPurpose, RootKeyRecord, RootKeyState
from keys.store import RETENTION_REASON, KeyStore
from vault.audit.access_logs import expired_access_logs
from vault.audit.models import AuditAction
from vault.audit.purge import AuditPurgeReport, purge_audit_log
from vault.audit.service import AuditContext, append_event
from vault.cases.models import Case, CaseStatus, LegalHoldReason
from vault.cases.service import retention_due_at
from vault.clock import as_utc
from vault.documents.models import Document
from vault.errors import InvalidCaseUpdate, NotFound, RetentionHold
from vault.keyring import translated_key_errors
from vault.patients.models import Patient
from vault.storage.interfaces import BlobStore
from vault.subject_rights.erased import (
    ERASURE_REASON,
    close_finished_erasures,
    released_parts,
)
from vault.subject_rights.models import ErasedCase, Right

NEXT_DUE_LIMIT = 10
BATCH_SIZE = 500


@dataclass(frozen=True)
class DueDate:
    case_id: uuid.UUID
    due_at: datetime


@dataclass(frozen=True)
class HeldCase:
    case_id: uuid.UUID
    due_at: datetime
    reason: LegalHoldReason
    held_since: datetime


@dataclass(frozen=True)
class RetentionReport:
    """What a run found and did. In a dry run ``shredded`` and ``patients_erased`` stay empty
    and ``epochs_destroyed`` lists the epochs whose month is over (what a run would destroy
    once their cases are gone)."""

    dry_run: bool
    due: tuple[uuid.UUID, ...]  # due now, plus shreds an earlier run left unfinished
    shredded: tuple[uuid.UUID, ...]
    held: tuple[HeldCase, ...]
    next_due: tuple[DueDate, ...]
    patients_erased: int
    epochs_destroyed: tuple[str, ...]


@dataclass(frozen=True)
class RootKeyReport:
    rotated: bool
    rewrapped: int
    root_keys_destroyed: tuple[str, ...]


@dataclass(frozen=True)
class PurgeReport:
    access_logs_deleted: tuple[str, ...]  # file names (one per day)
    audit: AuditPurgeReport


# -- finding cases -----------------------------------------------------------------------------


def due_cases(session: Session, *, now: datetime, retention_years: int) -> list[uuid.UUID]:
    """Completed, unheld cases whose retention period is over, oldest completion first."""
    rows = session.exec(
        select(col(Case.id), col(Case.treatment_completed_at))
        .where(
            col(Case.status) == CaseStatus.COMPLETED,
            col(Case.legal_hold_at).is_(None),
            col(Case.treatment_completed_at) <= _completed_cutoff(now, retention_years),
        )
        .order_by(col(Case.treatment_completed_at), col(Case.id))
    )
    # The SQL cut-off is a day generous around 29 February; retention_due_at is the rule.
    return [
        case_id
        for case_id, completed in rows
        if completed is not None and retention_due_at(completed, years=retention_years) <= now
    ]


def held_cases(session: Session, *, now: datetime, retention_years: int) -> list[HeldCase]:
    """Cases that would be due but are under a legal hold, oldest completion first."""
    rows = session.exec(
        select(Case)
        .where(
            col(Case.status) == CaseStatus.COMPLETED,
            col(Case.legal_hold_at).is_not(None),
            col(Case.treatment_completed_at) <= _completed_cutoff(now, retention_years),
        )
        .order_by(col(Case.treatment_completed_at), col(Case.id))
    ).all()
    return [
        HeldCase(
            case_id=case.id,
            due_at=retention_due_at(_completed_at(case), years=retention_years),
            reason=cast("LegalHoldReason", case.legal_hold_reason),
            held_since=as_utc(cast("datetime", case.legal_hold_at)),
        )
        for case in rows
        if retention_due_at(_completed_at(case), years=retention_years) <= now
    ]


def next_due(
    session: Session, *, now: datetime, retention_years: int, limit: int = NEXT_DUE_LIMIT
) -> list[DueDate]:
    """The next ``limit`` completed cases to fall due after ``now`` (held ones included)."""
    rows = session.exec(
        select(col(Case.id), col(Case.treatment_completed_at))
        .where(
            col(Case.status) == CaseStatus.COMPLETED,
            col(Case.treatment_completed_at) > _completed_cutoff(now, retention_years, early=True),
        )
        .order_by(col(Case.treatment_completed_at), col(Case.id))
        .limit(limit + 1)  # one spare: the cut-off may let one still-due case through
    ).all()
    upcoming = [
        DueDate(case_id, retention_due_at(as_utc(completed), years=retention_years))
        for case_id, completed in rows
        if completed is not None
    ]
    return [entry for entry in upcoming if entry.due_at > now][:limit]


def unfinished_shreds(session: Session) -> list[uuid.UUID]:
    """Cases an earlier run marked SHREDDING and did not finish."""
    return list(session.exec(select(col(Case.id)).where(col(Case.status) == CaseStatus.SHREDDING)))


def _completed_cutoff(now: datetime, years: int, *, early: bool = False) -> datetime:
    """A completion time at or after which no case is due at ``now`` (a day generous).

    ``early`` gives the other side: completions strictly after it may still be due.
    """
    start = as_utc(now).astimezone(UTC)
    try:
        cutoff = start.replace(year=start.year - years)
    except ValueError:  # 29 February
        cutoff = start.replace(year=start.year - years, month=3, day=1)
    return cutoff - timedelta(days=1) if early else cutoff + timedelta(days=1)


def _completed_at(case: Case) -> datetime:
    if case.treatment_completed_at is None:
        raise InvalidCaseUpdate("this case's treatment is not completed")
    return as_utc(case.treatment_completed_at)


# -- shredding ---------------------------------------------------------------------------------


def case_object_prefix(case_id: uuid.UUID) -> str:
    """The prefix every object of a case is stored under (``documents.object_key_for``)."""
    return f"cases/{case_id}/"


def shred_case(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    case_id: uuid.UUID,
    retention_years: int,
    now: datetime,
) -> bool:
    """Shred one due case (see the module docstring); True if this call finished it.

    Finishes a shred an earlier call left halfway; a shredded case is a no-op (False).
    Raises RetentionHold for a held case, InvalidCaseUpdate for one not due, NotFound.
    """
    case = session.get(Case, case_id, populate_existing=True)
    if case is None:
        raise NotFound("no such case")
    if case.status is CaseStatus.SHREDDED:
        return False
    if case.status is not CaseStatus.SHREDDING:
        if case.legal_hold_at is not None:
            raise RetentionHold("this case is under a legal hold")
        due_at = retention_due_at(_completed_at(case), years=retention_years)
        if case.status is not CaseStatus.COMPLETED or due_at > now:
            raise InvalidCaseUpdate("this case's retention period is not over")
        mark_shredding(session, [case_id])
        session.commit()
    finished = finish_shred(session=session, store=store, keys=keys, case_id=case_id, now=now)
    return finished is not None


def mark_shredding(
    session: Session,
    case_ids: Sequence[uuid.UUID],
    *,
    statuses: Collection[CaseStatus] = (CaseStatus.COMPLETED,),
) -> int:
    """Step 1, the intent, for those of ``case_ids`` still in one of ``statuses`` and unheld
    (a hold placed meanwhile wins); how many were marked. Flushes: the caller commits, and
    only that commit makes the intent durable. An erasure also marks open cases."""
    if not case_ids:
        return 0
    result = cast(
        "CursorResult[Any]",
        session.execute(
            sa.update(Case)
            .where(
                col(Case.id).in_(case_ids),
                col(Case.status).in_(list(statuses)),
                col(Case.legal_hold_at).is_(None),
            )
            .values(status=CaseStatus.SHREDDING)
            .execution_options(synchronize_session=False)
        ),
    )
    return int(result.rowcount)


@dataclass(frozen=True)
class Finished:
    patient_erased: bool


def finish_shred(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    case_id: uuid.UUID,
    now: datetime,
    audit: AuditContext = AuditContext.SYSTEM,
) -> Finished | None:
    """Steps 2 and 3 for a case marked SHREDDING; None if it is not (any more).

    Commits. A case an erasure request erased (``ErasedCase``) is recorded as ``case.erase``
    and its keys (and the patient key with the last case) go for reason "erasure". ``audit``
    acts (the system for the retention run, the patient for their own erasure).
    """
    # One read tells the case's state and whether an erasure request erased it.
    found = session.exec(
        select(Case, col(ErasedCase.request_id))
        .outerjoin(ErasedCase, col(ErasedCase.case_id) == col(Case.id))
        .where(col(Case.id) == case_id)
        .execution_options(populate_existing=True)
    ).first()
    if found is None or found[0].status is not CaseStatus.SHREDDING:
        session.rollback()
        return None
    case, erasure_request_id = found
    key_id, patient_id = case.key_id, case.patient_id
    erased = erasure_request_id is not None
    reason = ERASURE_REASON if erased else RETENTION_REASON
    object_keys = set(
        session.exec(select(col(Document.object_key)).where(col(Document.case_id) == case_id))
    )
    session.commit()  # no transaction stays open during the deletes
    for object_key in sorted(object_keys | set(store.keys(case_object_prefix(case_id)))):
        store.delete(object_key)

    finished = cast(
        "CursorResult[Any]",
        session.execute(
            sa.update(Case)
            .where(col(Case.id) == case_id, col(Case.status) == CaseStatus.SHREDDING)
            .values(status=CaseStatus.SHREDDED, shredded_at=now, outcome_sealed=None)
            .execution_options(synchronize_session=False)
        ),
    )
    if finished.rowcount != 1:
        session.rollback()  # another run finished it meanwhile
        return None
    with translated_key_errors():
        keys.destroy(session, key_id, reason=reason, now=now)
    session.execute(
        sa.update(Document)
        .where(col(Document.case_id) == case_id)
        .values(wrapped_dek=b"", filename_sealed=b"", sha256="", shredded_at=now)
        .execution_options(synchronize_session=False)
    )
    append_event(
        session,
        context=audit,
        action=AuditAction.CASE_ERASE if erased else AuditAction.CASE_SHRED,
        now=now,
        patient_id=patient_id,
        case_id=case_id,
        purpose=Right.ERASURE.value if erased else None,
    )
    patient_erased = erase_patient_if_no_case_left(
        session, keys, patient_id, now=now, reason=reason, audit=audit
    )
    session.commit()
    return Finished(patient_erased=patient_erased)


def erase_patient_if_no_case_left(
    session: Session,
    keys: KeyStore,
    patient_id: uuid.UUID,
    *,
    now: datetime,
    reason: str = RETENTION_REASON,
    audit: AuditContext = AuditContext.SYSTEM,
) -> bool:
    """Destroy the patient key of a patient whose every case is shredded (flushes only).

    The sealed identity columns are emptied too: a database copy taken after this holds no
    ciphertext of them either (one taken before needs the patient key: see ``keys.store``).
    """
    patient = session.get(Patient, patient_id, populate_existing=True)
    if patient is None or patient.erased_at is not None:
        return False
    unshredded = session.exec(
        select(col(Case.id)).where(
            col(Case.patient_id) == patient_id, col(Case.status) != CaseStatus.SHREDDED
        )
    ).first()
    if unshredded is not None:
        return False
    with translated_key_errors():
        keys.destroy(session, patient.key_id, reason=reason, now=now)
    patient.erased_at = now
    patient.name_sealed = patient.birth_date_sealed = patient.email_sealed = b""
    patient.phone_sealed = patient.sex_sealed = patient.country_sealed = None
    session.add(patient)
    append_event(
        session,
        context=audit,
        action=AuditAction.PATIENT_ERASE,
        now=now,
        patient_id=patient_id,
        purpose=Right.ERASURE.value if reason == ERASURE_REASON else None,
    )
    return True


def _erase_leftover_patients(session: Session, keys: KeyStore, *, now: datetime) -> int:
    """Patients whose last cases two concurrent shreds finished: each saw the other alive."""
    others = sa.exists().where(
        col(Case.patient_id) == col(Patient.id), col(Case.status) != CaseStatus.SHREDDED
    )
    shredded = sa.exists().where(
        col(Case.patient_id) == col(Patient.id), col(Case.status) == CaseStatus.SHREDDED
    )
    candidates = list(
        session.exec(
            select(col(Patient.id)).where(col(Patient.erased_at).is_(None), shredded, ~others)
        )
    )
    erased = 0
    for patient_id in candidates:
        erased += erase_patient_if_no_case_left(session, keys, patient_id, now=now)
        session.commit()
    return erased


# -- retention epochs --------------------------------------------------------------------------


def _past_epochs(session: Session, *, now: datetime) -> list[RootKeyRecord]:
    """Epoch root keys not yet destroyed whose month is over."""
    this_month = as_utc(now).astimezone(UTC).strftime("%Y-%m")
    return list(
        session.exec(
            select(RootKeyRecord)
            .where(
                col(RootKeyRecord.purpose) == RootKeyPurpose.EPOCH,
                col(RootKeyRecord.state) != RootKeyState.DESTROYED,
                col(RootKeyRecord.epoch) < this_month,
            )
            .order_by(col(RootKeyRecord.epoch))
        )
    )


def _destroy_past_epochs(
    session: Session, keys: KeyStore, *, now: datetime, retention_years: int
) -> list[str]:
    """Destroy each past epoch's root key once no live key is under it.

    Keys of cases that must survive it (held, or not due) move under the active root key
    first; keys of due cases stay, and hold the epoch back until their shred is finished.
    """
    destroyed = []
    for root in _past_epochs(session, now=now):
        root_id, epoch = root.id, cast("str", root.epoch)
        under = session.exec(
            select(Case)
            .join(KeyRecord, col(KeyRecord.id) == col(Case.key_id))
            .where(col(KeyRecord.root_key_id) == root_id, col(KeyRecord.destroyed_at).is_(None))
        ).all()
        survivors = [case.id for case in under if _survives(case, now, retention_years)]
        for case_id in survivors:
            _move_to_active_root_key(session, keys, case_id, now=now)
        session.commit()
        still_live = session.exec(
            select(col(KeyRecord.id)).where(
                col(KeyRecord.root_key_id) == root_id, col(KeyRecord.destroyed_at).is_(None)
            )
        ).first()
        if still_live is None:
            with translated_key_errors():
                keys.destroy_epoch(session, epoch=epoch, now=now)
            session.commit()
            destroyed.append(epoch)
        else:
            session.rollback()
    return destroyed


def _survives(case: Case, now: datetime, retention_years: int) -> bool:
    if case.status in (CaseStatus.SHREDDING, CaseStatus.SHREDDED):
        return False
    if case.legal_hold_at is not None or case.treatment_completed_at is None:
        return True
    return retention_due_at(as_utc(case.treatment_completed_at), years=retention_years) > now


def _move_to_active_root_key(
    session: Session, keys: KeyStore, case_id: uuid.UUID, *, now: datetime
) -> None:
    case = session.get(Case, case_id, populate_existing=True)
    if case is None:  # pragma: no cover - the caller just read it
        return
    with translated_key_errors():
        active = keys.ensure_active_root_key(session, now=now)
        keys.rewrap(session, case.key_id, root_key_id=active, now=now)


# -- the daily run -----------------------------------------------------------------------------


def run_retention(
    *,
    session: Session,
    store: BlobStore,
    keys: KeyStore,
    retention_years: int,
    now: datetime,
    dry_run: bool = False,
    audit: AuditContext = AuditContext.SYSTEM,
    next_due_limit: int = NEXT_DUE_LIMIT,
    batch_size: int = BATCH_SIZE,
) -> RetentionReport:
    """Shred every due case, finish interrupted shreds (and erasures), erase what erasures
    kept only for a legal hold since lifted, erase patients left with no case, close erasure
    requests, destroy past epochs' root keys; with ``dry_run`` only report (a
    ``retention.preview`` event is the one thing written). Commits as it goes; safe to run
    again at any point."""
    unfinished = unfinished_shreds(session)
    released = released_parts(session)
    due = due_cases(session, now=now, retention_years=retention_years)
    due += [case_id for _, case_id in released]
    held = held_cases(session, now=now, retention_years=retention_years)
    upcoming = next_due(session, now=now, retention_years=retention_years, limit=next_due_limit)
    if dry_run:
        epochs = [cast("str", root.epoch) for root in _past_epochs(session, now=now)]
        append_event(session, context=audit, action=AuditAction.RETENTION_PREVIEW, now=now)
        session.commit()
        return RetentionReport(
            True, tuple(unfinished + due), (), tuple(held), tuple(upcoming), 0, tuple(epochs)
        )
    session.commit()
    for batch in _batches(due, batch_size):
        mark_shredding(session, batch)
        session.commit()
    for request_id, case_id in released:
        _mark_released(session, request_id=request_id, case_id=case_id)
    shredded, erased = [], 0
    for case_id in unfinished + due:
        finished = finish_shred(session=session, store=store, keys=keys, case_id=case_id, now=now)
        if finished is not None:
            shredded.append(case_id)
            erased += finished.patient_erased
    erased += _erase_leftover_patients(session, keys, now=now)
    close_finished_erasures(session, now=now)
    session.commit()
    epochs = _destroy_past_epochs(session, keys, now=now, retention_years=retention_years)
    return RetentionReport(
        dry_run=False,
        due=tuple(unfinished + due),
        shredded=tuple(shredded),
        held=tuple(held),
        next_due=tuple(upcoming),
        patients_erased=erased,
        epochs_destroyed=tuple(epochs),
    )


def _mark_released(session: Session, *, request_id: uuid.UUID, case_id: uuid.UUID) -> None:
    """The intent to erase an open case an erasure kept for a hold that was lifted; a hold
    placed again meanwhile wins (nothing is written)."""
    try:
        session.add(ErasedCase(case_id=case_id, request_id=request_id))
        session.flush()
    except IntegrityError:  # another run recorded it first
        session.rollback()
        return
    if mark_shredding(session, [case_id], statuses=(CaseStatus.OPEN,)) == 1:
        session.commit()
    else:
        session.rollback()


def _batches(items: Sequence[uuid.UUID], size: int) -> Iterable[Sequence[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- root keys and purges ----------------------------------------------------------------------


def maintain_root_keys(
    *,
    session: Session,
    keys: KeyStore,
    sessions: Callable[[], Session],
    rotation_days: int,
    backup_window_days: int,
    now: datetime,
) -> RootKeyReport:
    """Rotate the active root key once it is ``rotation_days`` old (or finish a rotation
    that stopped), then destroy retired root keys past the backup window. Idempotent."""
    with translated_key_errors():
        rotated = keys.rotation_due(session, created_before=now - timedelta(days=rotation_days))
        session.commit()
        rewrapped = keys.rotate(sessions, now=now).rewrapped if rotated else 0
        destroyed = keys.destroy_retired_root_keys(
            session, older_than=now - timedelta(days=backup_window_days), now=now
        )
        session.commit()
    return RootKeyReport(rotated=rotated, rewrapped=rewrapped, root_keys_destroyed=tuple(destroyed))


def purge_expired_logs(
    *,
    session: Session,
    store: BlobStore,
    signing_key: bytes,
    access_log_dir: Path,
    keep_days: int,
    now: datetime,
    audit: AuditContext = AuditContext.SYSTEM,
) -> PurgeReport:
    """Delete access-log files older than ``keep_days`` and drop the audit chain's oldest
    segment about shredded cases only (``vault.audit.purge``)."""
    deleted = []
    for path in expired_access_logs(access_log_dir, now=now, keep_days=keep_days):
        path.unlink(missing_ok=True)
        deleted.append(path.name)
    audit_report = purge_audit_log(
        session,
        store=store,
        signing_key=signing_key,
        older_than=now - timedelta(days=keep_days),
        now=now,
        audit=audit,
    )
    return PurgeReport(access_logs_deleted=tuple(deleted), audit=audit_report)
