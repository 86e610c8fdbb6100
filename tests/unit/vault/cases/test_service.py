"""Case verbs over SQLite and PostgreSQL: listing, reading, outcome sealing, completion, audit."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from tests.factories import NOW, make_case, make_patient
from tests.unit.vault.cases.test_models import outcome_fields
from vault.audit.models import ActorKind, AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseOutcome, CaseStatus
from vault.cases.service import (
    complete_case,
    list_cases,
    read_case,
    record_outcome,
    unsafe_case_outcome,
)
from vault.clock import as_utc
from vault.errors import CaseAlreadyCompleted, DecryptionFailed, Gone, InvalidCaseUpdate, NotFound

COORDINATOR = AuditContext(ActorKind.USER, uuid.uuid4(), "192.0.0.0")
OUTCOME = CaseOutcome.model_validate(outcome_fields())


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(provider=LocalKeyringProvider(tmp_path / "keys" / "keyring.json"))


def complete(session: Session, keys: KeyStore, case_id: uuid.UUID, at: datetime) -> Case:
    return complete_case(
        session=session,
        keys=keys,
        case_id=case_id,
        completed_at=at,
        retention_years=5,
        now=at,
        audit=COORDINATOR,
    )


def events(session: Session) -> list[tuple[str, str, uuid.UUID | None]]:
    rows = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    return [(row.action, row.outcome, row.case_id) for row in rows]


def test_open_case_is_audited(session: Session, keys: KeyStore) -> None:
    case = make_case(session, keys)

    assert events(session) == [("case.open", "ok", case.id)]


def test_list_cases_newest_first_filtered_and_paged(session: Session, keys: KeyStore) -> None:
    alice, bob = make_patient(session, keys), make_patient(session, keys)
    opened = []
    for index in range(4):
        case = make_case(session, keys, alice if index % 2 == 0 else bob)
        case.created_at = NOW + timedelta(minutes=index)
        session.add(case)
        session.commit()
        opened.append(case.id)

    everything = list_cases(session=session, now=NOW, audit=COORDINATOR)
    of_alice = list_cases(session=session, patient_id=alice.id, now=NOW, audit=COORDINATOR)
    page = list_cases(session=session, limit=2, offset=1, now=NOW, audit=COORDINATOR)

    assert [case.id for case in everything] == opened[::-1]
    assert [case.id for case in of_alice] == [opened[2], opened[0]]
    assert [case.id for case in page] == [opened[2], opened[1]]
    assert events(session)[-3:] == [("case.list", "ok", None)] * 3


def test_list_cases_by_status(session: Session, keys: KeyStore) -> None:
    done, still_open = make_case(session, keys), make_case(session, keys)
    complete(session, keys, done.id, NOW)

    completed = list_cases(session=session, status=CaseStatus.COMPLETED, now=NOW, audit=COORDINATOR)
    opened = list_cases(session=session, status=CaseStatus.OPEN, now=NOW, audit=COORDINATOR)

    assert [case.id for case in completed] == [done.id]
    assert [case.id for case in opened] == [still_open.id]


def test_read_case_in_and_out_of_a_patients_scope(session: Session, keys: KeyStore) -> None:
    case = make_case(session, keys)
    stranger = make_patient(session, keys)

    own = read_case(
        session=session, case_id=case.id, patient_id=case.patient_id, now=NOW, audit=COORDINATOR
    )
    with pytest.raises(NotFound) as other:
        read_case(
            session=session, case_id=case.id, patient_id=stranger.id, now=NOW, audit=COORDINATOR
        )
    with pytest.raises(NotFound) as unknown:
        read_case(session=session, case_id=uuid.uuid4(), now=NOW, audit=COORDINATOR)

    assert own.id == case.id
    assert str(other.value) == str(unknown.value)  # no existence oracle
    assert events(session)[-2:] == [("case.read", "ok", case.id), ("case.read", "denied", case.id)]


def test_outcome_is_sealed_and_reads_back(session: Session, keys: KeyStore) -> None:
    case = make_case(session, keys)

    record_outcome(
        session=session, keys=keys, case_id=case.id, outcome=OUTCOME, now=NOW, audit=COORDINATOR
    )

    stored = session.get(Case, case.id)
    assert stored is not None
    assert stored.outcome_sealed is not None
    assert b"M17.1" not in stored.outcome_sealed
    assert b"12480" not in stored.outcome_sealed
    assert as_utc(stored.outcome_recorded_at or NOW) == NOW
    assert unsafe_case_outcome(session=session, keys=keys, case=stored) == OUTCOME
    assert events(session)[-1] == ("case.outcome", "ok", case.id)


def test_no_outcome_yet_reads_as_none(session: Session, keys: KeyStore) -> None:
    assert unsafe_case_outcome(session=session, keys=keys, case=make_case(session, keys)) is None


def test_a_sealed_outcome_copied_to_another_case_does_not_open(
    session: Session, keys: KeyStore
) -> None:
    patient = make_patient(session, keys)
    first, second = make_case(session, keys, patient), make_case(session, keys, patient)
    record_outcome(
        session=session, keys=keys, case_id=first.id, outcome=OUTCOME, now=NOW, audit=COORDINATOR
    )
    second.outcome_sealed = first.outcome_sealed
    session.add(second)
    session.commit()

    with pytest.raises(DecryptionFailed):
        unsafe_case_outcome(session=session, keys=keys, case=second)


def test_outcome_is_shredded_with_the_case_key(session: Session, keys: KeyStore) -> None:
    case = make_case(session, keys)
    record_outcome(
        session=session, keys=keys, case_id=case.id, outcome=OUTCOME, now=NOW, audit=COORDINATOR
    )
    keys.destroy(session, case.key_id, reason="test", now=NOW)
    session.commit()

    with pytest.raises(Gone):
        unsafe_case_outcome(session=session, keys=keys, case=case)


def test_complete_case_sets_the_retention_start(session: Session, keys: KeyStore) -> None:
    case = make_case(session, keys)
    completed_at = NOW + timedelta(days=3)

    done = complete_case(
        session=session,
        keys=keys,
        retention_years=5,
        case_id=case.id,
        completed_at=completed_at,
        now=completed_at + timedelta(hours=1),
        audit=COORDINATOR,
    )

    assert done.status is CaseStatus.COMPLETED
    assert as_utc(done.treatment_completed_at or NOW) == completed_at
    assert events(session)[-1] == ("case.complete", "ok", case.id)


def test_completing_twice_is_refused_and_keeps_the_first_date(
    session: Session, keys: KeyStore
) -> None:
    case = make_case(session, keys)
    complete(session, keys, case.id, NOW)
    later = NOW + timedelta(days=1)

    with pytest.raises(CaseAlreadyCompleted):
        complete(session, keys, case.id, later)
    session.rollback()

    stored = session.get(Case, case.id)
    assert stored is not None
    assert as_utc(stored.treatment_completed_at or later) == NOW
    assert [event[0] for event in events(session)].count("case.complete") == 1


@pytest.mark.parametrize(
    "completed_at",
    [NOW + timedelta(seconds=1), NOW - timedelta(days=1), NOW.replace(tzinfo=None)],
    ids=["future", "before-opening", "naive"],
)
def test_invalid_completion_dates_change_nothing(
    session: Session, keys: KeyStore, completed_at: object
) -> None:
    case = make_case(session, keys)

    with pytest.raises(InvalidCaseUpdate):
        complete_case(
            session=session,
            keys=keys,
            retention_years=5,
            case_id=case.id,
            completed_at=completed_at,  # type: ignore[arg-type]
            now=NOW,
            audit=COORDINATOR,
        )
    session.rollback()

    stored = session.get(Case, case.id)
    assert stored is not None
    assert stored.status is CaseStatus.OPEN
    assert stored.treatment_completed_at is None


def test_shredded_cases_refuse_outcome_and_completion(session: Session, keys: KeyStore) -> None:
    case = make_case(session, keys)
    case.status = CaseStatus.SHREDDED
    session.add(case)
    session.commit()

    with pytest.raises(Gone):
        record_outcome(
            session=session, keys=keys, case_id=case.id, outcome=OUTCOME, now=NOW, audit=COORDINATOR
        )
    with pytest.raises(Gone):
        complete(session, keys, case.id, NOW)
