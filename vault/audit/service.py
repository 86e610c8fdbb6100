"""Appending to the audit chain, and reading it back (ids only) for the privacy officer.

Appends are serialised on the single ``audit_head`` row (``SELECT ... FOR UPDATE`` on
PostgreSQL; SQLite transactions already start with ``BEGIN IMMEDIATE``), so concurrent writers
queue instead of forking the chain. ``append_event`` flushes but never commits: the caller's
commit makes the action and its event one atomic change, and if the event cannot be written
the caller's transaction rolls back with it (fail closed).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import insert as generic_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from vault.audit.chain import event_hash
from vault.audit.checkpoints import Checkpoint, write_checkpoint
from vault.audit.models import GENESIS_HASH, ActorKind, AuditAction, AuditEvent, AuditHead
from vault.audit.verify import VerifyReport, verify_chain
from vault.clock import as_utc
from vault.errors import AuditUnavailable
from vault.storage.interfaces import BlobStore

HEAD_ID = 1
OUTCOMES = frozenset({"ok", "denied", "refused"})
MAX_LIST_LIMIT = 1000  # events per page of list_events


@dataclass(frozen=True)
class AuditContext:
    """Who acts and from where; ``client`` is already anonymised."""

    actor_kind: ActorKind
    actor_id: uuid.UUID | None
    client: str | None

    SYSTEM: ClassVar["AuditContext"]


AuditContext.SYSTEM = AuditContext(ActorKind.SYSTEM, None, None)


def append_event(
    session: Session,
    *,
    context: AuditContext,
    action: AuditAction,
    now: datetime,
    outcome: str = "ok",
    patient_id: uuid.UUID | None = None,
    case_id: uuid.UUID | None = None,
    document_id: uuid.UUID | None = None,
    transfer_id: uuid.UUID | None = None,
    link_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    legal_basis: str | None = None,
    purpose: str | None = None,
) -> AuditEvent:
    """Append one event at the head of the chain and flush it (the caller commits).

    Raises AuditUnavailable when the event cannot be written; the caller's transaction must
    then roll back, so the action it records does not happen either.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}")
    try:
        head = _locked_head(session)
        values: dict[str, Any] = {
            "seq": head.seq + 1,
            # Microseconds are what both databases keep; UTC is what the hash encodes.
            "at": as_utc(now).astimezone(UTC),
            "action": str(action),
            "actor_kind": str(context.actor_kind),
            "actor_id": context.actor_id,
            "client": context.client,
            "patient_id": patient_id,
            "case_id": case_id,
            "document_id": document_id,
            "transfer_id": transfer_id,
            "link_id": link_id,
            "partner_id": partner_id,
            "user_id": user_id,
            "legal_basis": None if legal_basis is None else str(legal_basis),
            "purpose": None if purpose is None else str(purpose),
            "outcome": outcome,
            "prev_hash": head.hash,
        }
        event = AuditEvent(**values, hash=event_hash(values))
        head.seq, head.hash = event.seq, event.hash
        session.add(event)
        session.add(head)
        session.flush()
    except SQLAlchemyError as exc:
        raise AuditUnavailable("the audit log could not record this action") from exc
    return event


def list_events(
    session: Session,
    *,
    audit: AuditContext,
    now: datetime,
    after_seq: int = 0,
    limit: int = MAX_LIST_LIMIT,
) -> Sequence[AuditEvent]:
    """Events with ``seq > after_seq`` in chain order, at most ``limit`` (1..1000) of them.

    The reading itself is recorded (audit.list), after the page it returns.
    """
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    statement = (
        select(AuditEvent).where(col(AuditEvent.seq) > after_seq).order_by(col(AuditEvent.seq))
    )
    events = session.exec(statement.limit(limit)).all()
    append_event(session, context=audit, action=AuditAction.AUDIT_LIST, now=now)
    return events


def verify_audit_log(
    session: Session, *, store: BlobStore, signing_key: bytes, audit: AuditContext, now: datetime
) -> VerifyReport:
    """Verify the chain (``vault.audit.verify``) and record that it was verified, with its
    result as the event's outcome: ``ok`` for an intact chain, ``refused`` for a broken one
    (the last audit.verify event is what the metrics report as the last verification)."""
    report = verify_chain(session, store=store, signing_key=signing_key)
    outcome = "ok" if report.ok else "refused"
    append_event(session, context=audit, action=AuditAction.AUDIT_VERIFY, now=now, outcome=outcome)
    return report


def checkpoint_audit_log(
    session: Session, *, store: BlobStore, signing_key: bytes, audit: AuditContext, now: datetime
) -> Checkpoint:
    """Seal the chain's head in a signed checkpoint, then record that as the next event.

    The event comes after the seal, so a checkpoint never covers the event about itself.
    """
    checkpoint = write_checkpoint(session, store=store, signing_key=signing_key, now=now)
    append_event(session, context=audit, action=AuditAction.AUDIT_CHECKPOINT, now=now)
    return checkpoint


def _locked_head(session: Session) -> AuditHead:
    """The head row, locked for the rest of the transaction; created on first use."""
    head = _select_head(session)
    if head is None:
        session.execute(_insert_head_if_missing(session))
        head = _select_head(session)
        if head is None:  # pragma: no cover - the insert above guarantees the row
            raise AuditUnavailable("the audit log head could not be created")
    return head


def _select_head(session: Session) -> AuditHead | None:
    # populate_existing: sessions keep objects across commits (expire_on_commit=False), and a
    # head cached from an earlier transaction would fork the chain.
    statement = (
        select(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


def _insert_head_if_missing(session: Session) -> Any:
    """INSERT the genesis head, doing nothing if a concurrent writer created it first."""
    values = {"id": HEAD_ID, "seq": 0, "hash": GENESIS_HASH}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(AuditHead).values(values).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(AuditHead).values(values).on_conflict_do_nothing()
    return generic_insert(AuditHead).values(values)
