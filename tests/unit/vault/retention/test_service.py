"""Retention runs with an injected clock: due dates, shredding, legal holds, epochs, patients."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from infra.db import make_engine
from keys.local import LocalKeyringProvider
from keys.models import KeyRecord, RootKeyPurpose, RootKeyRecord, RootKeyState
from keys.store import KeyStore
from tests.factories import (
    NOW,
    Vault,
    local_vault,
    make_completed_case,
    make_patient,
)
from vault.audit.models import AuditEvent
from vault.audit.service import AuditContext
from vault.cases.models import Case, CaseStatus, LegalHoldReason
from vault.cases.service import (
    get_case,
    lift_legal_hold,
    place_legal_hold,
    retention_due_at,
    retention_epoch,
    unsafe_case_outcome,
)
from vault.documents.models import Document
from vault.documents.service import object_key_for, read_document
from vault.errors import Gone, InvalidCaseUpdate, KeyDestroyed, RetentionHold
from vault.patients.models import Patient
from vault.patients.service import unsafe_patient_identity
from vault.retention.service import (
    RetentionReport,
    case_object_prefix,
    due_cases,
    maintain_root_keys,
    run_retention,
    shred_case,
)

DUE = datetime(2031, 11, 24, 9, 0, tzinfo=UTC)  # NOW + 5 years
DAY_BEFORE = DUE - timedelta(days=1)
DAY_AFTER = DUE + timedelta(days=1)
AFTER_EPOCH = datetime(2031, 12, 1, 0, 0, tzinfo=UTC)  # November 2031 is over
ADMIN = AuditContext.SYSTEM


@pytest.fixture
def vault(session: Session, tmp_path: Path) -> Vault:
    return local_vault(session, tmp_path)


def run(vault: Vault, now: datetime, **options: object) -> RetentionReport:
    return run_retention(
        session=vault.session,
        store=vault.store,
        keys=vault.keys,
        retention_years=5,
        now=now,
        **options,  # type: ignore[arg-type]
    )


def actions(session: Session, action: str) -> list[uuid.UUID | None]:
    rows = session.exec(select(AuditEvent).where(AuditEvent.action == action)).all()
    return [row.case_id or row.patient_id for row in rows]


def readable(vault: Vault, document: Document) -> bool:
    try:
        stream = vault.read(document.id)
    except Gone:
        return False
    return bool(b"".join(stream.chunks))


def assert_fully_shredded(vault: Vault, case_id: uuid.UUID) -> None:
    session = vault.session
    case = session.get(Case, case_id, populate_existing=True)
    assert case is not None
    assert case.status is CaseStatus.SHREDDED
    assert case.shredded_at is not None
    assert case.outcome_sealed is None
    key = session.get(KeyRecord, case.key_id, populate_existing=True)
    assert key is not None
    assert key.wrapped is None
    assert key.destroyed_at is not None
    documents = session.exec(select(Document).where(Document.case_id == case_id)).all()
    assert documents
    for document in documents:
        assert document.shredded_at is not None
        assert (document.wrapped_dek, document.filename_sealed, document.sha256) == (b"", b"", "")
        assert not vault.store.exists(document.object_key)
    assert list(vault.store.keys(case_object_prefix(case_id))) == []
    assert actions(session, "case.shred").count(case_id) == 1


def test_retention_dates_count_whole_years_and_never_end_early() -> None:
    assert retention_due_at(NOW, years=5) == DUE
    assert retention_epoch(NOW, years=5) == "2031-11"
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert retention_due_at(leap, years=5) == datetime(2033, 3, 1, 12, 0, tzinfo=UTC)
    assert retention_due_at(leap, years=4) == datetime(2032, 2, 29, 12, 0, tzinfo=UTC)
    case_id = uuid.uuid4()
    assert object_key_for(case_id=case_id, document_id=uuid.uuid4()).startswith(
        case_object_prefix(case_id)
    )


def test_completion_moves_the_case_key_under_its_epoch_root_key(vault: Vault) -> None:
    case, _ = make_completed_case(vault)

    key = vault.session.get(KeyRecord, case.key_id, populate_existing=True)
    assert key is not None
    root = vault.session.get(RootKeyRecord, key.root_key_id)
    assert root is not None
    assert (root.purpose, root.epoch) == (RootKeyPurpose.EPOCH, "2031-11")


def test_day_before_due_nothing_day_after_everything(vault: Vault) -> None:
    cases = [make_completed_case(vault, documents=2) for _ in range(3)]

    before = run(vault, DAY_BEFORE)

    assert before.shredded == ()
    assert before.due == ()
    assert [entry.case_id for entry in before.next_due] == sorted(
        (case.id for case, _ in cases), key=lambda case_id: (DUE, case_id)
    )
    assert {entry.due_at for entry in before.next_due} == {DUE}
    assert all(readable(vault, doc) for _, docs in cases for doc in docs)

    after = run(vault, DAY_AFTER)

    assert set(after.shredded) == {case.id for case, _ in cases}
    assert after.next_due == ()
    for case, documents in cases:
        assert_fully_shredded(vault, case.id)
        for document in documents:
            with pytest.raises(Gone):
                vault.read(document.id)
        with pytest.raises(Gone):
            unsafe_case_outcome(session=vault.session, keys=vault.keys, case=case)


def test_running_twice_changes_nothing_the_second_time(vault: Vault) -> None:
    case, _ = make_completed_case(vault)
    first = run(vault, DAY_AFTER)
    events = vault.session.exec(select(sa.func.count()).select_from(AuditEvent)).one()

    second = run(vault, DAY_AFTER)

    assert first.shredded == (case.id,)
    assert second.shredded == ()
    assert second.due == ()
    assert vault.session.exec(select(sa.func.count()).select_from(AuditEvent)).one() == events
    assert_fully_shredded(vault, case.id)


def test_a_patient_with_no_case_left_loses_the_patient_key(vault: Vault) -> None:
    kept = make_patient(vault.session, vault.keys)
    gone = make_patient(vault.session, vault.keys)
    make_completed_case(vault, patient=kept)
    make_completed_case(vault, patient=kept, completed_at=NOW + timedelta(days=30))
    make_completed_case(vault, patient=gone)
    make_completed_case(vault, patient=gone)

    report = run(vault, DAY_AFTER)

    assert len(report.shredded) == 3
    assert report.patients_erased == 1
    assert actions(vault.session, "patient.erase") == [gone.id]
    with pytest.raises(KeyDestroyed):
        unsafe_patient_identity(session=vault.session, keys=vault.keys, patient=gone)
    vault.session.refresh(gone)
    assert gone.erased_at is not None
    identity = unsafe_patient_identity(session=vault.session, keys=vault.keys, patient=kept)
    assert identity.email  # still readable: one of their cases is not due yet


def test_a_patient_whose_last_shred_raced_is_erased_by_the_next_run(vault: Vault) -> None:
    patient = make_patient(vault.session, vault.keys)
    first, _ = make_completed_case(vault, patient=patient)
    second, _ = make_completed_case(vault, patient=patient)
    shred_case(
        session=vault.session,
        store=vault.store,
        keys=vault.keys,
        case_id=first.id,
        retention_years=5,
        now=DAY_AFTER,
    )
    # The second case's shred saw the first one still unshredded (two workers at once).
    vault.session.execute(
        sa.update(Case).where(col(Case.id) == second.id).values(status=CaseStatus.SHREDDED)
    )
    vault.session.commit()

    report = run(vault, DAY_AFTER)

    assert report.patients_erased == 1
    assert actions(vault.session, "patient.erase") == [patient.id]


def test_a_legal_hold_stops_the_shred_and_is_reported(vault: Vault) -> None:
    held, held_docs = make_completed_case(vault)
    free, _ = make_completed_case(vault)
    place_legal_hold(
        session=vault.session,
        case_id=held.id,
        reason=LegalHoldReason.LITIGATION,
        now=NOW,
        audit=ADMIN,
    )

    report = run(vault, DAY_AFTER)

    assert report.shredded == (free.id,)
    assert [(h.case_id, h.reason, h.due_at) for h in report.held] == [
        (held.id, LegalHoldReason.LITIGATION, DUE)
    ]
    assert readable(vault, held_docs[0])
    with pytest.raises(RetentionHold):
        shred_case(
            session=vault.session,
            store=vault.store,
            keys=vault.keys,
            case_id=held.id,
            retention_years=5,
            now=DAY_AFTER,
        )

    lift_legal_hold(session=vault.session, case_id=held.id, now=DAY_AFTER, audit=ADMIN)
    again = run(vault, DAY_AFTER)

    assert again.shredded == (held.id,)
    assert again.held == ()
    assert_fully_shredded(vault, held.id)
    assert actions(vault.session, "legal_hold.place") == [held.id]
    assert actions(vault.session, "legal_hold.lift") == [held.id]


def test_no_hold_on_a_shredded_case_and_no_shred_before_due(vault: Vault) -> None:
    case, _ = make_completed_case(vault)
    with pytest.raises(InvalidCaseUpdate):
        shred_case(
            session=vault.session,
            store=vault.store,
            keys=vault.keys,
            case_id=case.id,
            retention_years=5,
            now=DAY_BEFORE,
        )
    assert get_case(session=vault.session, case_id=case.id).status is CaseStatus.COMPLETED
    run(vault, DAY_AFTER)

    with pytest.raises(Gone):
        place_legal_hold(
            session=vault.session,
            case_id=case.id,
            reason=LegalHoldReason.LITIGATION,
            now=DAY_AFTER,
            audit=ADMIN,
        )


def test_the_epoch_root_key_goes_once_its_month_is_over(vault: Vault) -> None:
    make_completed_case(vault)
    run(vault, DAY_AFTER)

    within_month = run(vault, DAY_AFTER + timedelta(days=2))
    after_month = run(vault, AFTER_EPOCH)

    assert within_month.epochs_destroyed == ()
    assert after_month.epochs_destroyed == ("2031-11",)
    root = vault.session.exec(select(RootKeyRecord).where(RootKeyRecord.epoch == "2031-11")).one()
    assert root.state is RootKeyState.DESTROYED
    assert run(vault, AFTER_EPOCH).epochs_destroyed == ()


def test_a_held_case_moves_off_its_epoch_before_the_epoch_is_destroyed(vault: Vault) -> None:
    held, documents = make_completed_case(vault)
    make_completed_case(vault)
    place_legal_hold(
        session=vault.session,
        case_id=held.id,
        reason=LegalHoldReason.AUTHORITY_REQUEST,
        now=NOW,
        audit=ADMIN,
    )

    report = run(vault, AFTER_EPOCH)

    assert report.epochs_destroyed == ("2031-11",)
    assert readable(vault, documents[0])
    key = vault.session.get(KeyRecord, held.key_id, populate_existing=True)
    assert key is not None
    root = vault.session.get(RootKeyRecord, key.root_key_id)
    assert root is not None
    assert root.purpose is RootKeyPurpose.ACTIVE


def test_a_due_case_that_could_not_be_shredded_holds_its_epoch_back(vault: Vault) -> None:
    case, documents = make_completed_case(vault)
    vault.session.execute(
        sa.update(Case).where(col(Case.id) == case.id).values(status=CaseStatus.SHREDDING)
    )
    vault.session.commit()
    broken = BrokenStore(vault.store)

    with pytest.raises(OSError, match="disk gone"):
        run_retention(
            session=vault.session,
            store=broken,  # type: ignore[arg-type]
            keys=vault.keys,
            retention_years=5,
            now=AFTER_EPOCH,
        )

    root = vault.session.exec(select(RootKeyRecord).where(RootKeyRecord.epoch == "2031-11")).one()
    assert root.state is not RootKeyState.DESTROYED
    with pytest.raises(Gone):  # marked: unreadable already, though its key is alive
        vault.read(documents[0].id)
    assert run(vault, AFTER_EPOCH).epochs_destroyed == ("2031-11",)
    assert_fully_shredded(vault, case.id)


class BrokenStore:
    """A store whose deletes fail: a shred stops between its intent and its final step."""

    def __init__(self, store: object) -> None:
        self._store = store

    def delete(self, key: str) -> None:
        raise OSError("disk gone")

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


@pytest.mark.parametrize("stop_after", ["intent", "objects"])
def test_an_interrupted_shred_is_finished_by_the_next_run(vault: Vault, stop_after: str) -> None:
    case, documents = make_completed_case(vault, documents=2)
    vault.session.execute(
        sa.update(Case).where(col(Case.id) == case.id).values(status=CaseStatus.SHREDDING)
    )
    vault.session.commit()
    if stop_after == "objects":
        for document in documents:
            vault.store.delete(document.object_key)

    for document in documents:
        with pytest.raises(Gone):
            vault.read(document.id)
    report = run(vault, DAY_AFTER)

    assert report.shredded == (case.id,)
    assert_fully_shredded(vault, case.id)


def test_a_dry_run_reports_and_changes_nothing(vault: Vault) -> None:
    due, documents = make_completed_case(vault)
    later, _ = make_completed_case(vault, completed_at=NOW + timedelta(days=40))

    report = run(vault, DAY_AFTER, dry_run=True)

    assert report.dry_run
    assert report.due == (due.id,)
    assert report.shredded == ()
    assert [(entry.case_id, entry.due_at) for entry in report.next_due] == [
        (later.id, DUE + timedelta(days=40))
    ]
    assert readable(vault, documents[0])
    assert get_case(session=vault.session, case_id=due.id).status is CaseStatus.COMPLETED
    assert actions(vault.session, "retention.preview") == [None]
    assert actions(vault.session, "case.shred") == []
    assert due_cases(vault.session, now=DAY_AFTER, retention_years=5) == [due.id]


def test_a_backup_taken_before_the_shred_decrypts_nothing_after_the_epoch_is_gone(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'live.db'}")
    import infra.models

    infra.models.metadata.create_all(engine)
    with Session(engine) as session:
        vault = local_vault(session, tmp_path)
        made = [make_completed_case(vault, documents=2) for _ in range(2)]
        shredded = {case.id: [document.id for document in docs] for case, docs in made}
        kept_document = make_completed_case(vault, completed_at=NOW + timedelta(days=60))[1][0].id
        session.close()
        engine.dispose()  # the last connection's close checkpoints the WAL into the file
        backup = tmp_path / "backup.db"
        shutil.copyfile(tmp_path / "live.db", backup)

        report = run(vault, AFTER_EPOCH)
        assert set(report.shredded) == set(shredded)
        assert report.epochs_destroyed == ("2031-11",)
    engine.dispose()

    restored = make_engine(f"sqlite:///{backup}")
    fresh_keys = KeyStore(provider=LocalKeyringProvider(tmp_path / "keys" / "keyring.json"))
    with Session(restored) as session:
        # The backup still has every row (the case is not even marked), and the objects
        # might have been restored too: only the destroyed epoch root key stands in the way.
        for case_id, document_ids in shredded.items():
            row = session.get(Case, case_id)
            assert row is not None
            assert row.status is CaseStatus.COMPLETED
            for document_id in document_ids:
                with pytest.raises(KeyDestroyed):
                    read_document(
                        session=session,
                        store=vault.store,
                        keys=fresh_keys,
                        document_id=document_id,
                        now=AFTER_EPOCH,
                        audit=ADMIN,
                    )
        stream = read_document(
            session=session,
            store=vault.store,
            keys=fresh_keys,
            document_id=kept_document,
            now=AFTER_EPOCH,
            audit=ADMIN,
        )
        assert b"".join(stream.chunks)
    restored.dispose()


def test_root_keys_rotate_when_old_and_retired_ones_go_after_the_backup_window(
    vault: Vault,
) -> None:
    make_completed_case(vault)
    patient_key = make_patient(vault.session, vault.keys).key_id

    def maintain(now: datetime) -> tuple[bool, tuple[str, ...]]:
        report = maintain_root_keys(
            session=vault.session,
            keys=vault.keys,
            sessions=lambda: Session(vault.session.get_bind()),
            rotation_days=90,
            backup_window_days=35,
            now=now,
        )
        return report.rotated, report.root_keys_destroyed

    first_root = vault.session.get(KeyRecord, patient_key)
    assert first_root is not None
    old_root_id = first_root.root_key_id

    assert maintain(NOW + timedelta(days=89)) == (False, ())
    assert maintain(NOW + timedelta(days=91)) == (True, ())
    assert maintain(NOW + timedelta(days=91 + 34)) == (False, ())
    assert maintain(NOW + timedelta(days=91 + 36)) == (False, (old_root_id,))
    moved = vault.session.get(KeyRecord, patient_key, populate_existing=True)
    assert moved is not None
    assert moved.root_key_id != old_root_id
    assert unsafe_patient_identity(
        session=vault.session,
        keys=vault.keys,
        patient=vault.session.exec(select(Patient).where(Patient.key_id == patient_key)).one(),
    )
