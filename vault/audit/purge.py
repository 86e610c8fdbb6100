"""Dropping the oldest segment of the audit chain once nothing in it may be kept any longer.

An event may go when it is older than the retention limit and refers to no case or only to a
shredded one. The prefix dropped always ends at a signed checkpoint, which then anchors the
``prev_hash`` of the oldest event kept, so ``verify_chain`` still proves the rest
(``vault.audit.verify``). Each run first seals the chain head in a checkpoint when it is not
sealed yet: when the whole chain may go, that checkpoint is the anchor; otherwise it becomes
a cut point for later runs. A chain that fails verification is never cut: the evidence stays.

Order of effects: the checkpoint object is written before any event is deleted; the events
and the ``audit.purge`` event are one transaction; checkpoints older than the anchor are
deleted from the store last (a crash leaves only harmless extra checkpoints, removed by the
next run).
"""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from vault.audit.checkpoints import checkpoint_key, checkpoint_keys, seq_from_key, write_checkpoint
from vault.audit.models import AuditAction, AuditEvent, AuditHead
from vault.audit.service import AuditContext, append_event
from vault.audit.verify import verify_chain
from vault.cases.models import Case, CaseStatus
from vault.errors import AuditChainBroken
from vault.storage.interfaces import BlobStore


@dataclass(frozen=True)
class AuditPurgeReport:
    dropped: int  # events deleted by this run
    anchor_seq: int | None  # the checkpoint the oldest kept event now hangs from
    sealed_seq: int | None  # the head checkpoint this run wrote, if it wrote one


def purge_audit_log(
    session: Session,
    *,
    store: BlobStore,
    signing_key: bytes,
    older_than: datetime,
    now: datetime,
    audit: AuditContext,
) -> AuditPurgeReport:
    """Drop the longest sealed prefix of events before ``older_than`` about no live case.

    Raises AuditChainBroken (dropping nothing) when the chain does not verify. Commits.
    """
    verified = verify_chain(session, store=store, signing_key=signing_key)
    if not verified.ok:
        raise AuditChainBroken(f"the audit chain is broken at event {verified.first_broken_seq}")
    session.rollback()  # end the read transaction; the head is re-read below
    first = session.scalar(sa.select(sa.func.min(col(AuditEvent.seq))))
    head = session.get(AuditHead, 1, populate_existing=True)
    if first is None or head is None:
        return AuditPurgeReport(dropped=0, anchor_seq=None, sealed_seq=None)
    last_droppable = _last_droppable_seq(session, older_than=older_than, head_seq=head.seq)

    sealed = set(_checkpoint_seqs(store))
    sealed_seq = None
    if head.seq not in sealed:
        sealed_seq = write_checkpoint(session, store=store, signing_key=signing_key, now=now).seq
        sealed.add(sealed_seq)
    anchor = max((seq for seq in sealed if first <= seq <= last_droppable), default=None)
    if anchor is None:
        session.commit()
        return AuditPurgeReport(dropped=0, anchor_seq=None, sealed_seq=sealed_seq)

    deleted = session.execute(sa.delete(AuditEvent).where(col(AuditEvent.seq) <= anchor))
    append_event(session, context=audit, action=AuditAction.AUDIT_PURGE, now=now)
    session.commit()
    for seq in sealed:
        if seq < anchor:
            store.delete(checkpoint_key(seq))
    return AuditPurgeReport(
        dropped=int(getattr(deleted, "rowcount", 0)), anchor_seq=anchor, sealed_seq=sealed_seq
    )


def _last_droppable_seq(session: Session, *, older_than: datetime, head_seq: int) -> int:
    """The seq of the last event of the longest prefix that may be dropped."""
    shredded = sa.select(col(Case.id)).where(col(Case.status) == CaseStatus.SHREDDED)
    droppable = sa.and_(
        col(AuditEvent.at) < older_than,
        sa.or_(col(AuditEvent.case_id).is_(None), col(AuditEvent.case_id).in_(shredded)),
    )
    first_kept = session.scalar(
        sa.select(sa.func.min(col(AuditEvent.seq))).where(sa.not_(droppable))
    )
    return head_seq if first_kept is None else first_kept - 1


def _checkpoint_seqs(store: BlobStore) -> list[int]:
    return [seq for key in checkpoint_keys(store) if (seq := seq_from_key(key)) is not None]
