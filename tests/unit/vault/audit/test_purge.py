"""purge_audit_log drops only an old, sealed prefix about gone cases; what is left verifies."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from tests.factories import NOW, make_case
from vault.audit.checkpoints import checkpoint_keys, seq_from_key, write_checkpoint
from vault.audit.models import AuditAction, AuditEvent
from vault.audit.purge import AuditPurgeReport, purge_audit_log
from vault.audit.service import AuditContext, append_event
from vault.audit.verify import verify_chain
from vault.cases.models import Case, CaseStatus
from vault.errors import AuditChainBroken
from vault.storage.local import LocalFolderBlobStore

KEY = b"k" * 32
KEEP = timedelta(days=396)
LATER = NOW + KEEP + timedelta(days=4)


@pytest.fixture
def store(tmp_path: Path) -> LocalFolderBlobStore:
    return LocalFolderBlobStore(tmp_path / "objects")


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(provider=LocalKeyringProvider(tmp_path / "keys" / "keyring.json"))


def purge(session: Session, store: LocalFolderBlobStore, now: datetime) -> AuditPurgeReport:
    return purge_audit_log(
        session,
        store=store,
        signing_key=KEY,
        older_than=now - KEEP,
        now=now,
        audit=AuditContext.SYSTEM,
    )


def no_case_event(session: Session, at: datetime = NOW) -> int:
    seq = append_event(
        session, context=AuditContext.SYSTEM, action=AuditAction.AUTH_LOGIN, now=at
    ).seq
    session.commit()
    return seq


def shred(session: Session, case: Case) -> None:
    session.execute(
        sa.update(Case).where(col(Case.id) == case.id).values(status=CaseStatus.SHREDDED)
    )
    session.commit()


def seqs(session: Session) -> list[int]:
    return list(session.exec(select(col(AuditEvent.seq)).order_by(col(AuditEvent.seq))))


def assert_verifies(session: Session, store: LocalFolderBlobStore) -> None:
    report = verify_chain(session, store=store, signing_key=KEY)
    assert (report.ok, report.reason) == (True, None)


def test_the_old_prefix_about_gone_cases_is_dropped_up_to_a_checkpoint(
    session: Session, store: LocalFolderBlobStore, keys: KeyStore
) -> None:
    gone = make_case(session, keys)  # seq 1: case.open of a case shredded below
    no_case_event(session)  # 2
    write_checkpoint(session, store=store, signing_key=KEY, now=NOW)  # seals 2
    live = make_case(session, keys)  # 3: about a case that still exists
    no_case_event(session)  # 4
    shred(session, gone)

    first = purge(session, store, LATER)

    assert (first.dropped, first.anchor_seq, first.sealed_seq) == (2, 2, 4)
    assert seqs(session) == [3, 4, 5]  # 5 is the audit.purge event
    assert_verifies(session, store)

    second = purge(session, store, LATER)

    assert (second.dropped, second.anchor_seq, second.sealed_seq) == (0, None, 5)
    assert seqs(session) == [3, 4, 5]

    shred(session, live)
    third = purge(session, store, LATER)

    # 5 (the first purge's own event) is too recent: the cut stops at the checkpoint at 4.
    assert (third.dropped, third.anchor_seq) == (2, 4)
    assert seqs(session) == [5, 6]
    assert_verifies(session, store)
    kept_checkpoints = sorted(seq_from_key(key) or 0 for key in checkpoint_keys(store))
    assert kept_checkpoints[0] == 4  # the older ones went with the events they sealed


def test_recent_events_and_events_about_live_cases_stay(
    session: Session, store: LocalFolderBlobStore, keys: KeyStore
) -> None:
    make_case(session, keys)
    no_case_event(session)

    recent = purge(session, store, NOW + timedelta(days=30))
    about_live_case = purge(session, store, LATER)

    assert recent.dropped == about_live_case.dropped == 0
    assert seqs(session) == [1, 2]
    assert_verifies(session, store)


def test_a_whole_chain_past_its_retention_is_sealed_and_dropped_in_one_run(
    session: Session, store: LocalFolderBlobStore
) -> None:
    for _ in range(5):
        no_case_event(session)

    report = purge(session, store, LATER)

    assert (report.dropped, report.anchor_seq, report.sealed_seq) == (5, 5, 5)
    assert seqs(session) == [6]
    assert_verifies(session, store)


def test_a_broken_chain_is_never_cut(session: Session, store: LocalFolderBlobStore) -> None:
    for _ in range(3):
        no_case_event(session)
    session.execute(
        sa.update(AuditEvent).where(col(AuditEvent.seq) == 2).values(action="auth.logout")
    )
    session.commit()

    with pytest.raises(AuditChainBroken):
        purge(session, store, LATER)

    assert seqs(session) == [1, 2, 3]
    assert list(checkpoint_keys(store)) == []
