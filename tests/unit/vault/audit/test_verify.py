"""verify_chain catches every kind of tampering with the stored chain, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from tests.factories import NOW, make_audit_events
from vault.audit.chain import event_hash
from vault.audit.checkpoints import checkpoint_key, write_checkpoint
from vault.audit.models import AuditEvent, AuditHead
from vault.audit.verify import verify_chain
from vault.storage.local import LocalFolderBlobStore

KEY = b"k" * 32
EVENTS = 10
_events = AuditEvent.__table__  # type: ignore[attr-defined]
_head = AuditHead.__table__  # type: ignore[attr-defined]


@pytest.fixture
def store(tmp_path: Path) -> LocalFolderBlobStore:
    return LocalFolderBlobStore(tmp_path / "objects")


@pytest.fixture
def chain(session: Session) -> Session:
    make_audit_events(session, EVENTS)
    return session


def _verify(session: Session, store: LocalFolderBlobStore, **kwargs: int) -> tuple:
    report = verify_chain(session, store=store, signing_key=KEY, **kwargs)
    assert report.ok is (report.reason is None) is (report.first_broken_seq is None)
    return report.first_broken_seq, report.reason


def _row(session: Session, seq: int) -> dict:
    return dict(session.execute(sa.select(_events).where(_events.c.seq == seq)).mappings().one())


def _update(session: Session, at_seq: int, /, **values: object) -> None:
    session.execute(sa.update(_events).where(_events.c.seq == at_seq).values(**values))
    session.commit()


def _rehash(session: Session, seq: int, **values: object) -> str:
    """Rewrite an event like a careful attacker would: with a recomputed hash."""
    row = _row(session, seq) | values
    row["hash"] = event_hash(row)
    _update(session, seq, **values, hash=row["hash"])
    return row["hash"]


def _delete(session: Session, *seqs: int) -> None:
    session.execute(sa.delete(_events).where(_events.c.seq.in_(seqs)))
    session.commit()


def _set_head(session: Session, seq: int) -> None:
    session.execute(sa.update(_head).values(seq=seq, hash=_row(session, seq)["hash"]))
    session.commit()


def test_an_untouched_chain_verifies(chain: Session, store: LocalFolderBlobStore) -> None:
    report = verify_chain(chain, store=store, signing_key=KEY, batch_size=3)
    assert report.ok
    assert (report.events_checked, report.checkpoints_checked) == (EVENTS, 0)


def test_an_empty_chain_verifies(session: Session, store: LocalFolderBlobStore) -> None:
    report = verify_chain(session, store=store, signing_key=KEY)
    assert (report.ok, report.events_checked) == (True, 0)


@pytest.mark.parametrize(
    "change",
    [
        {"action": "document.read"},
        {"outcome": "denied"},
        {"client": "203.0.0.0"},
        {"at": NOW.replace(year=2020)},
        {"legal_basis": "art6-1-f"},
        {"hash": "f" * 64},
    ],
)
def test_an_edited_event_is_caught(
    chain: Session, store: LocalFolderBlobStore, change: dict
) -> None:
    _update(chain, 4, **change)
    assert _verify(chain, store, batch_size=3) == (4, "hash mismatch")


def test_an_edited_event_with_a_recomputed_hash_breaks_the_next_link(
    chain: Session, store: LocalFolderBlobStore
) -> None:
    _rehash(chain, 4, action="document.read")
    assert _verify(chain, store) == (5, "previous hash mismatch")


def test_a_deleted_event_is_caught(chain: Session, store: LocalFolderBlobStore) -> None:
    _delete(chain, 6)
    assert _verify(chain, store, batch_size=3) == (6, "sequence gap")


def test_a_deleted_first_event_is_caught(chain: Session, store: LocalFolderBlobStore) -> None:
    _delete(chain, 1)
    assert _verify(chain, store) == (1, "sequence gap")


def test_reordered_events_are_caught(chain: Session, store: LocalFolderBlobStore) -> None:
    fourth, fifth = _row(chain, 4), _row(chain, 5)
    movable = [name for name in fourth if name != "seq"]
    _update(chain, 4, **{name: fifth[name] for name in movable})
    _update(chain, 5, **{name: fourth[name] for name in movable})
    assert _verify(chain, store) == (4, "hash mismatch")


def test_an_inserted_event_is_caught(chain: Session, store: LocalFolderBlobStore) -> None:
    for seq in range(EVENTS, 4, -1):  # make room at 5, one row at a time (unique seq)
        _update(chain, seq, seq=seq + 1)
    forged = _row(chain, 4) | {"seq": 5, "prev_hash": _row(chain, 4)["hash"]}
    forged["hash"] = event_hash(forged)
    chain.execute(sa.insert(_events).values(**forged))
    chain.commit()
    _set_head(chain, EVENTS + 1)
    assert _verify(chain, store) == (6, "hash mismatch")


def test_an_event_inserted_before_the_first_is_caught(
    chain: Session, store: LocalFolderBlobStore
) -> None:
    forged = _row(chain, 1) | {"seq": 0}
    forged["hash"] = event_hash(forged)
    chain.execute(sa.insert(_events).values(**forged))
    chain.commit()
    assert _verify(chain, store) == (0, "sequence gap")


def test_an_event_appended_behind_the_heads_back_is_caught(
    chain: Session, store: LocalFolderBlobStore
) -> None:
    last = _row(chain, EVENTS)
    forged = last | {"seq": EVENTS + 1, "prev_hash": last["hash"]}
    forged["hash"] = event_hash(forged)
    chain.execute(sa.insert(_events).values(**forged))
    chain.commit()
    assert _verify(chain, store) == (EVENTS + 1, "head mismatch")


def test_a_cut_off_tail_is_caught_by_the_head(chain: Session, store: LocalFolderBlobStore) -> None:
    _delete(chain, 9, 10)
    assert _verify(chain, store) == (9, "head mismatch")


def test_a_cut_off_tail_with_a_rewound_head_is_caught_by_a_checkpoint(
    chain: Session, store: LocalFolderBlobStore
) -> None:
    write_checkpoint(chain, store=store, signing_key=KEY, now=NOW)
    _delete(chain, 9, 10)
    _set_head(chain, 8)
    assert _verify(chain, store) == (9, "checkpoint mismatch")


def test_a_rewritten_sealed_segment_is_caught_by_its_checkpoint(
    chain: Session, store: LocalFolderBlobStore
) -> None:
    write_checkpoint(chain, store=store, signing_key=KEY, now=NOW)
    # Rewrite events 3..10 with fresh, consistent hashes and head: only the checkpoint knows.
    previous = _rehash(chain, 3, outcome="denied")
    for seq in range(4, EVENTS + 1):
        previous = _rehash(chain, seq, prev_hash=previous)
    _set_head(chain, EVENTS)
    assert _verify(chain, store) == (EVENTS, "checkpoint mismatch")


def test_a_dropped_oldest_segment_anchored_by_a_checkpoint_verifies(
    session: Session, store: LocalFolderBlobStore
) -> None:
    make_audit_events(session, 5)
    write_checkpoint(session, store=store, signing_key=KEY, now=NOW)
    make_audit_events(session, 5)
    _delete(session, 1, 2, 3, 4, 5)
    report = verify_chain(session, store=store, signing_key=KEY)
    assert report.ok
    assert (report.events_checked, report.checkpoints_checked) == (5, 1)


def test_a_dropped_segment_without_its_anchor_is_a_gap(
    session: Session, store: LocalFolderBlobStore
) -> None:
    make_audit_events(session, 3)
    write_checkpoint(session, store=store, signing_key=KEY, now=NOW)
    make_audit_events(session, 7)
    _delete(session, 1, 2, 3, 4, 5)
    assert _verify(session, store) == (4, "sequence gap")


def test_a_forged_anchor_is_caught(session: Session, store: LocalFolderBlobStore) -> None:
    make_audit_events(session, 5)
    write_checkpoint(session, store=store, signing_key=KEY, now=NOW)
    make_audit_events(session, 5)
    _delete(session, 1, 2, 3, 4, 5)
    _rehash(session, 6, prev_hash="a" * 64)
    assert _verify(session, store) == (6, "previous hash mismatch")


def test_a_tampered_checkpoint_is_caught(chain: Session, store: LocalFolderBlobStore) -> None:
    write_checkpoint(chain, store=store, signing_key=KEY, now=NOW)
    key = checkpoint_key(EVENTS)
    document = json.loads(b"".join(store.open(key)))
    document["hash"] = _row(chain, EVENTS - 1)["hash"]
    store.put(key, [json.dumps(document).encode()])
    assert _verify(chain, store) == (EVENTS, "checkpoint signature invalid")


def test_a_checkpoint_signed_with_another_key_is_caught(
    chain: Session, store: LocalFolderBlobStore
) -> None:
    write_checkpoint(chain, store=store, signing_key=b"x" * 32, now=NOW)
    assert _verify(chain, store) == (EVENTS, "checkpoint signature invalid")
