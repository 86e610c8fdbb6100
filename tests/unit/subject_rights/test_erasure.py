"""Erasure (Art. 17) on SQLite and PostgreSQL: what is erased at once, what is kept and why,
the crash-safe path finished by the retention run, and the register and audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from keys.models import KeyRecord
from tests.factories import (
    NOW,
    Vault,
    local_vault,
    make_case,
    make_completed_case,
    make_consent,
    make_patient,
    make_user,
    png_bytes,
)
from vault.accounts.models import AuthToken, Role, User
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseStatus, LegalHoldReason
from vault.cases.service import lift_legal_hold, place_legal_hold
from vault.consents.models import Consent, Restriction, RestrictionReason
from vault.consents.service import assert_not_restricted
from vault.documents.models import Document
from vault.errors import ErasureConflict, Gone, NotFound, ProcessingRestricted
from vault.patients.models import Patient
from vault.retention.service import case_object_prefix, run_retention
from vault.subject_rights import erasure
from vault.subject_rights.erasure import (
    TREATMENT_RECORDS,
    ErasureOutcome,
    erase_patient_data,
    retained_parts,
)
from vault.subject_rights.models import (
    ErasedCase,
    RequestStatus,
    RetainedPart,
    RetentionGround,
    RightsRequest,
)
from vault.surveys.models import Survey
from vault.surveys.service import answer_survey

DUE = datetime(2031, 11, 24, 9, 0, tzinfo=UTC)  # NOW + 5 years
PATIENT = AuditContext.SYSTEM  # who acts is not what these tests are about


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


def erase(vault: Vault, patient_id: uuid.UUID, *, now: datetime = NOW) -> ErasureOutcome:
    return erase_patient_data(
        session=vault.session,
        store=vault.store,
        keys=vault.keys,
        patient_id=patient_id,
        retention_years=5,
        now=now,
        audit=PATIENT,
    )


def open_case_with_documents(vault: Vault, patient: Patient, count: int = 2) -> Case:
    case = make_case(vault.session, vault.keys, patient)
    for index in range(count):
        vault.upload(case, png_bytes(8, 8, seed=index), filename=f"scan-{index}.png")
    return case


def events(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.exec(
            select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.seq))
        )
    )


def key_of(session: Session, key_id: uuid.UUID) -> KeyRecord:
    key = session.get(KeyRecord, key_id, populate_existing=True)
    assert key is not None
    return key


def assert_erased(vault: Vault, case_id: uuid.UUID) -> None:
    """Fully erased: shredded, key destroyed for reason erasure, objects gone, one event."""
    session = vault.session
    case = session.get(Case, case_id, populate_existing=True)
    assert case is not None
    assert case.status is CaseStatus.SHREDDED
    assert case.outcome_sealed is None
    key = key_of(session, case.key_id)
    assert (key.wrapped, key.destroy_reason) == (None, "erasure")
    for document in session.exec(select(Document).where(Document.case_id == case_id)).all():
        assert (document.wrapped_dek, document.filename_sealed, document.sha256) == (b"", b"", "")
        assert document.shredded_at is not None
    assert list(vault.store.keys(case_object_prefix(case_id))) == []
    assert [e.case_id for e in events(session, "case.erase")].count(case_id) == 1
    assert case_id not in [e.case_id for e in events(session, "case.shred")]


def test_open_cases_are_erased_at_once_and_the_patient_with_them(vault: Vault) -> None:
    session = vault.session
    patient = make_patient(session, vault.keys)
    cases = [open_case_with_documents(vault, patient) for _ in range(2)]
    consent = make_consent(session, cases[0])
    user = make_user(session, Role.PATIENT, patient_id=patient.id)
    digest, user_id = user.login_digest, user.id
    session.add(
        AuthToken(
            digest="a" * 64,
            user_id=user_id,
            kind="access",  # type: ignore[arg-type]
            family_id=uuid.uuid4(),
            expires_at=NOW + timedelta(hours=1),
            created_at=NOW,
        )
    )
    session.commit()
    other = make_patient(session, vault.keys)
    other_case = open_case_with_documents(vault, other, count=1)

    outcome = erase(vault, patient.id)

    assert set(outcome.erased_cases) == {case.id for case in cases}
    assert outcome.kept == ()
    assert outcome.patient_erased is True
    assert outcome.status is RequestStatus.COMPLETED
    assert outcome.request.status is RequestStatus.COMPLETED
    for case in cases:
        assert_erased(vault, case.id)
    erased = session.get(Patient, patient.id, populate_existing=True)
    assert erased is not None
    assert erased.erased_at is not None
    assert (erased.name_sealed, erased.email_sealed, erased.phone_sealed) == (b"", b"", None)
    assert key_of(session, erased.key_id).destroy_reason == "erasure"
    withdrawn = session.get(Consent, consent.id, populate_existing=True)
    assert withdrawn is not None
    assert withdrawn.withdrawn_at is not None
    account = session.get(User, user_id, populate_existing=True)
    assert account is not None
    assert account.disabled_at is not None
    assert account.login_digest != digest
    assert session.exec(select(AuthToken.revoked_at).where(AuthToken.user_id == user_id)).all()
    assert (
        None
        not in session.exec(select(AuthToken.revoked_at).where(AuthToken.user_id == user_id)).all()
    )
    # Nothing of anyone else was touched.
    assert key_of(session, other.key_id).wrapped is not None
    assert session.get(Case, other_case.id, populate_existing=True).status is CaseStatus.OPEN  # type: ignore[union-attr]
    assert list(vault.store.keys(case_object_prefix(other_case.id)))
    # The audit trail: ids only, the right in ``purpose``.
    actions = [
        (e.action, e.purpose)
        for e in session.exec(
            select(AuditEvent)
            .where(AuditEvent.patient_id == patient.id, AuditEvent.seq > 0)
            .order_by(col(AuditEvent.seq))
        )
        if e.action not in ("case.open", "document.store", "consent.give", "patient.register")
    ]
    assert actions[0] == ("rights.request", "erasure")
    assert ("consent.withdraw", "erasure") in actions
    assert ("user.disable", "erasure") in actions
    assert actions.count(("case.erase", "erasure")) == 2
    assert actions[-2:] == [("patient.erase", "erasure"), ("rights.complete", "erasure")]


def test_a_held_case_and_a_completed_case_are_kept_restricted_and_listed(vault: Vault) -> None:
    session = vault.session
    patient = make_patient(session, vault.keys)
    open_case = open_case_with_documents(vault, patient)
    held = open_case_with_documents(vault, patient, count=1)
    place_legal_hold(
        session=session, case_id=held.id, reason=LegalHoldReason.LITIGATION, now=NOW, audit=PATIENT
    )
    completed, completed_documents = make_completed_case(vault, patient=patient)

    outcome = erase(vault, patient.id, now=NOW + timedelta(days=1))

    assert outcome.erased_cases == (open_case.id,)
    assert {(k.case_id, k.ground, k.reason, k.until) for k in outcome.kept} == {
        (held.id, RetentionGround.LEGAL_CLAIMS, "litigation", None),
        (completed.id, RetentionGround.LEGAL_OBLIGATION, TREATMENT_RECORDS, DUE),
    }
    assert outcome.status is RequestStatus.PARTIALLY_COMPLETED
    assert outcome.request.status is RequestStatus.PARTIALLY_COMPLETED
    assert outcome.patient_erased is False
    assert_erased(vault, open_case.id)
    assert vault.read(completed_documents[0].id).chunks  # kept: still there
    assert key_of(session, patient.key_id).wrapped is not None  # the kept cases are theirs
    [restriction] = session.exec(select(Restriction)).all()
    assert (restriction.patient_id, restriction.case_id, restriction.reason) == (
        patient.id,
        None,
        RestrictionReason.ERASURE_RETAINED,
    )
    for case_id in (held.id, completed.id):
        with pytest.raises(ProcessingRestricted):
            assert_not_restricted(session, patient_id=patient.id, case_id=case_id)
    listed = retained_parts(session, request_id=outcome.request.id, now=NOW, audit=PATIENT)
    assert sorted(listed, key=lambda part: part.case_id) == sorted(
        outcome.kept, key=lambda part: part.case_id
    )
    assert [e.purpose for e in events(session, "restriction.place")] == ["erasure"]
    assert events(session, "patient.erase") == []

    # On its retention date the completed case goes the ordinary way; the held one stays.
    report = run_retention(
        session=session, store=vault.store, keys=vault.keys, retention_years=5, now=DUE
    )
    assert report.shredded == (completed.id,)
    assert [e.case_id for e in events(session, "case.shred")] == [completed.id]
    assert key_of(session, patient.key_id).wrapped is not None

    # Once the hold is lifted, the open case it kept is erased and the patient with it.
    lift_legal_hold(session=session, case_id=held.id, now=DUE, audit=PATIENT)
    report = run_retention(
        session=session, store=vault.store, keys=vault.keys, retention_years=5, now=DUE
    )
    assert report.shredded == (held.id,)
    assert_erased(vault, held.id)
    assert report.patients_erased == 1
    assert key_of(session, patient.key_id).wrapped is None


def test_a_completed_case_past_its_retention_date_is_erased_with_its_survey(
    vault: Vault,
) -> None:
    session = vault.session
    patient = make_patient(session, vault.keys)
    case, _ = make_completed_case(vault, patient=patient)
    answer_survey(
        session=session,
        keys=vault.keys,
        patient_id=patient.id,
        case_id=case.id,
        scores={"information": 4},
        free_text="a comment",
        qa_consent=True,
        now=NOW,
        audit=PATIENT,
    )

    outcome = erase(vault, patient.id, now=DUE + timedelta(days=1))

    assert (outcome.erased_cases, outcome.kept) == ((case.id,), ())
    assert_erased(vault, case.id)
    assert session.exec(select(func.count()).select_from(Survey)).one() == 0


def test_a_patient_without_cases_is_erased_in_one_transaction(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)

    outcome = erase(vault, patient.id)

    assert (outcome.erased_cases, outcome.kept, outcome.patient_erased) == ((), (), True)
    assert outcome.request.status is RequestStatus.COMPLETED
    with pytest.raises(Gone):
        erase(vault, patient.id)


@pytest.mark.parametrize("stop_after", ["intent", "some-objects"])
def test_an_erasure_that_stopped_halfway_is_finished_by_the_retention_run(
    vault: Vault, stop_after: str
) -> None:
    session = vault.session
    patient = make_patient(session, vault.keys)
    cases = [open_case_with_documents(vault, patient) for _ in range(2)]
    keys = [case.key_id for case in cases]
    documents = session.exec(select(Document).where(col(Document.case_id) == cases[0].id)).all()
    broken = BrokenStore(vault.store, deletes_before_failing=1 if stop_after != "intent" else 0)

    with pytest.raises(OSError, match="killed"):
        erase_patient_data(
            session=session,
            store=broken,  # type: ignore[arg-type]
            keys=vault.keys,
            patient_id=patient.id,
            retention_years=5,
            now=NOW,
            audit=PATIENT,
        )

    # Marked: unreadable everywhere, keys alive, the request open, nothing logged as erased.
    for case in cases:
        stored = session.get(Case, case.id, populate_existing=True)
        assert stored is not None
        assert stored.status is CaseStatus.SHREDDING
    for key_id in keys:
        assert key_of(session, key_id).wrapped is not None
    for document in documents:
        with pytest.raises(Gone):
            vault.read(document.id)
    [request] = session.exec(select(RightsRequest)).all()
    assert request.status is RequestStatus.OPEN
    assert events(session, "case.erase") == []

    report = run_retention(
        session=session, store=vault.store, keys=vault.keys, retention_years=5, now=NOW
    )

    assert set(report.shredded) == {case.id for case in cases}
    for case in cases:
        assert_erased(vault, case.id)
    assert report.patients_erased == 1
    assert key_of(session, patient.key_id).destroy_reason == "erasure"
    session.refresh(request)
    assert request.status is RequestStatus.COMPLETED
    assert [e.purpose for e in events(session, "rights.complete")] == ["erasure"]
    assert events(session, "case.shred") == []


def test_a_hold_placed_while_the_erasure_is_planned_wins_and_nothing_is_stored(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = vault.session
    patient = make_patient(session, vault.keys)
    case = open_case_with_documents(vault, patient, count=1)
    user_id = make_user(session, Role.PATIENT, patient_id=patient.id).id
    plan = erasure._plan

    def plan_then_hold(*args: object, **kwargs: object) -> erasure._Plan:
        planned = plan(*args, **kwargs)  # type: ignore[arg-type]
        session.execute(sa.update(Case).where(col(Case.id) == case.id).values(legal_hold_at=NOW))
        return planned

    monkeypatch.setattr(erasure, "_plan", plan_then_hold)

    with pytest.raises(ErasureConflict):
        erase(vault, patient.id)

    stored = session.get(Case, case.id, populate_existing=True)
    assert stored is not None
    assert (stored.status, stored.legal_hold_at) == (CaseStatus.OPEN, None)
    for table in (RightsRequest, ErasedCase, RetainedPart, Restriction):
        assert session.exec(select(func.count()).select_from(table)).one() == 0
    account = session.get(User, user_id, populate_existing=True)
    assert account is not None
    assert account.disabled_at is None
    assert events(session, "rights.request") == []


def test_retained_parts_of_an_unknown_request_is_not_found(vault: Vault) -> None:
    with pytest.raises(NotFound):
        retained_parts(vault.session, request_id=uuid.uuid4(), now=NOW, audit=PATIENT)


class BrokenStore:
    """A store killed after ``deletes_before_failing`` deletes: an erasure stops halfway."""

    def __init__(self, store: object, *, deletes_before_failing: int) -> None:
        self._store = store
        self._left = deletes_before_failing

    def delete(self, key: str) -> None:
        if self._left == 0:
            raise OSError("killed")
        self._left -= 1
        self._store.delete(key)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)
