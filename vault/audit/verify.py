"""Recompute the audit chain and report the first broken event.

What is checked, streaming events in seq order in fixed-size batches (memory stays constant):
- every stored checkpoint's signature (a forged or edited checkpoint breaks the proof);
- each event's hash against its recomputed canonical bytes (an edited field, or an event
  moved to another seq, changes it);
- seqs start at 1 (or after a sealed anchor) and follow each other without gaps (a deleted
  or forged event), and each ``prev_hash`` is the hash of the event before (an event
  rewritten with a fresh hash breaks its successor's link);
- each event that a checkpoint seals has the checkpoint's hash;
- the last event is the head row, no event lies beyond the head, and no checkpoint seals a
  seq beyond it (the tail was cut off, even with the head row rewound).

Old segments can be dropped at their retention limit: when the oldest event kept has seq
``n > 1``, its ``prev_hash`` must equal the hash of a signed checkpoint at ``n - 1``, which
anchors the rest of the chain; without one the missing events count as a sequence gap.

Checkpoints are listed before the head is read and events are read only up to that head, so
writers appending while verify runs never make a sound chain look broken.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from vault.audit.chain import event_hash
from vault.audit.checkpoints import (
    Checkpoint,
    InvalidCheckpoint,
    checkpoint_keys,
    read_checkpoint,
    seq_from_key,
)
from vault.audit.models import GENESIS_HASH, AuditEvent, AuditHead
from vault.storage.interfaces import BlobStore

BATCH_SIZE = 1000

HASH_MISMATCH = "hash mismatch"
SEQUENCE_GAP = "sequence gap"
PREVIOUS_HASH_MISMATCH = "previous hash mismatch"
HEAD_MISMATCH = "head mismatch"
CHECKPOINT_MISMATCH = "checkpoint mismatch"
CHECKPOINT_SIGNATURE_INVALID = "checkpoint signature invalid"

_events = AuditEvent.__table__  # type: ignore[attr-defined]
_head = AuditHead.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class VerifyReport:
    """The outcome: ``reason`` is one of the fixed phrases above, never data from the log."""

    ok: bool
    events_checked: int
    first_broken_seq: int | None
    reason: str | None
    checkpoints_checked: int


class _Broken(Exception):
    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq, self.reason = seq, reason


def verify_chain(
    session: Session, *, store: BlobStore, signing_key: bytes, batch_size: int = BATCH_SIZE
) -> VerifyReport:
    """Check the whole chain and every checkpoint; never raises for a broken chain."""
    checked = 0
    checkpoints: dict[int, Checkpoint] = {}
    try:
        checkpoints = _load_checkpoints(store, signing_key=signing_key)
        head_seq, head_hash = _read_head(session)
        last: tuple[int, str] | None = None
        for event in _stream(session, up_to=head_seq, batch_size=batch_size):
            last = _check_event(event, previous=last, checkpoints=checkpoints)
            checked += 1
        _check_tail(session, last=last, head=(head_seq, head_hash), checkpoints=checkpoints)
    except _Broken as broken:
        return VerifyReport(False, checked, broken.seq, broken.reason, len(checkpoints))
    return VerifyReport(True, checked, None, None, len(checkpoints))


def _load_checkpoints(store: BlobStore, *, signing_key: bytes) -> dict[int, Checkpoint]:
    checkpoints: dict[int, Checkpoint] = {}
    for key in checkpoint_keys(store):
        try:
            checkpoint = read_checkpoint(store, key, signing_key=signing_key)
        except InvalidCheckpoint:
            raise _Broken(seq_from_key(key) or 0, CHECKPOINT_SIGNATURE_INVALID) from None
        checkpoints[checkpoint.seq] = checkpoint
    return checkpoints


def _read_head(session: Session) -> tuple[int, str]:
    row = session.execute(sa.select(_head.c.seq, _head.c.hash)).first()
    return (row.seq, row.hash) if row is not None else (0, GENESIS_HASH)


def _stream(session: Session, *, up_to: int, batch_size: int) -> Iterator[Mapping[str, Any]]:
    """Events with seq <= ``up_to`` in seq order, fetched ``batch_size`` rows at a time."""
    after: int | None = None  # no lower bound: a forged seq 0 or below must be seen too
    while True:
        statement = (
            sa.select(_events)
            .where(_events.c.seq <= up_to)
            .order_by(_events.c.seq)
            .limit(batch_size)
        )
        if after is not None:
            statement = statement.where(_events.c.seq > after)
        rows = session.execute(statement).mappings().all()
        yield from (dict(row) for row in rows)
        if len(rows) < batch_size:
            return
        after = rows[-1]["seq"]


def _check_event(
    event: Mapping[str, Any],
    *,
    previous: tuple[int, str] | None,
    checkpoints: Mapping[int, Checkpoint],
) -> tuple[int, str]:
    seq = event["seq"]
    if previous is None:
        expected_prev = _anchor(seq, checkpoints)
    elif seq != previous[0] + 1:
        raise _Broken(previous[0] + 1, SEQUENCE_GAP)
    else:
        expected_prev = previous[1]
    if event_hash(event) != event["hash"]:
        raise _Broken(seq, HASH_MISMATCH)
    if event["prev_hash"] != expected_prev:
        raise _Broken(seq, PREVIOUS_HASH_MISMATCH)
    sealed = checkpoints.get(seq)
    if sealed is not None and sealed.hash != event["hash"]:
        raise _Broken(seq, CHECKPOINT_MISMATCH)
    return seq, event["hash"]


def _anchor(first_seq: int, checkpoints: Mapping[int, Checkpoint]) -> str:
    """The prev_hash the oldest stored event must carry: genesis, or a checkpoint's hash."""
    if first_seq == 1:
        return GENESIS_HASH
    if first_seq < 1:
        raise _Broken(first_seq, SEQUENCE_GAP)
    anchor = checkpoints.get(first_seq - 1)
    if anchor is None:
        raise _Broken(_first_unsealed(first_seq, checkpoints), SEQUENCE_GAP)
    return anchor.hash


def _first_unsealed(seq: int, checkpoints: Mapping[int, Checkpoint]) -> int:
    """The first seq after the newest checkpoint before ``seq``: where the missing run starts."""
    return max((s for s in checkpoints if s < seq), default=0) + 1


def _check_tail(
    session: Session,
    *,
    last: tuple[int, str] | None,
    head: tuple[int, str],
    checkpoints: Mapping[int, Checkpoint],
) -> None:
    head_seq, head_hash = head
    if last is None:
        # No events at all: sound only for an untouched chain or one dropped whole and sealed.
        sealed = checkpoints.get(head_seq)
        if head_seq > 0 and (sealed is None or sealed.hash != head_hash):
            raise _Broken(_first_unsealed(head_seq + 1, checkpoints), HEAD_MISMATCH)
    elif last[0] != head_seq:
        raise _Broken(last[0] + 1, HEAD_MISMATCH)
    elif last[1] != head_hash:
        raise _Broken(head_seq, HEAD_MISMATCH)
    beyond = [seq for seq in checkpoints if seq > head_seq]
    if beyond:
        raise _Broken(head_seq + 1, CHECKPOINT_MISMATCH)
    newest = session.execute(sa.select(sa.func.max(_events.c.seq))).scalar()
    # Writers may have appended since the head was read: compare with a fresh head.
    if newest is not None and newest > head_seq and newest > _read_head(session)[0]:
        raise _Broken(head_seq + 1, HEAD_MISMATCH)
