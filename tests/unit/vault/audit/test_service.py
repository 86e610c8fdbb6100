"""append_event: a gapless hash chain, serialised writers, atomic with the caller, fail closed."""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from infra.db import make_engine, session_factory
from tests.factories import NOW, make_audit_events
from vault.audit.chain import event_hash
from vault.audit.models import GENESIS_HASH, ActorKind, AuditAction, AuditEvent, AuditHead
from vault.audit.service import AuditContext, append_event, list_events
from vault.errors import AuditUnavailable

WRITERS = 20
EVENTS_PER_WRITER = 200


def _chain(session: Session) -> list[AuditEvent]:
    return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def test_first_event_starts_the_chain_and_records_ids_only(session: Session) -> None:
    user_id, case_id = uuid.uuid4(), uuid.uuid4()
    context = AuditContext(ActorKind.USER, user_id, "203.0.0.0")
    event = append_event(
        session,
        context=context,
        action=AuditAction.TRANSFER_CREATE,
        now=NOW,
        case_id=case_id,
        legal_basis="art9-2-a",
        purpose="treatment-check",
    )
    session.commit()

    stored = session.exec(select(AuditEvent)).one()
    assert (stored.seq, stored.prev_hash) == (1, GENESIS_HASH)
    assert stored.action == "transfer.create"
    assert (stored.actor_kind, stored.actor_id, stored.client) == ("user", user_id, "203.0.0.0")
    assert (stored.case_id, stored.outcome) == (case_id, "ok")
    assert stored.hash == event.hash == event_hash(stored.model_dump())
    head = session.exec(select(AuditHead)).one()
    assert (head.seq, head.hash) == (1, event.hash)


def test_events_link_to_their_predecessor(session: Session) -> None:
    make_audit_events(session, 5)
    chain = _chain(session)
    assert [event.seq for event in chain] == [1, 2, 3, 4, 5]
    for before, after in itertools.pairwise(chain):
        assert after.prev_hash == before.hash


def test_naive_times_from_sqlite_hash_like_aware_ones(session: Session) -> None:
    event = append_event(
        session, context=AuditContext.SYSTEM, action=AuditAction.AUDIT_VERIFY, now=NOW
    )
    session.commit()
    session.expire_all()
    stored = session.exec(select(AuditEvent)).one()
    assert stored.at.replace(tzinfo=UTC) == NOW
    assert event_hash(stored.model_dump()) == event.hash


def test_a_session_reused_after_others_appended_does_not_fork(engine: sa.Engine) -> None:
    # Runtime sessions keep objects across commits (expire_on_commit=False): a stale cached
    # head would hand out seq 2 twice.
    sessions = session_factory(engine)
    with sessions() as first, sessions() as second:
        make_audit_events(first, 1)
        make_audit_events(second, 1)
        make_audit_events(first, 1)
        assert [event.seq for event in _chain(second)] == [1, 2, 3]


def test_nothing_is_kept_when_the_caller_rolls_back(session: Session) -> None:
    make_audit_events(session, 2)
    append_event(session, context=AuditContext.SYSTEM, action=AuditAction.CASE_READ, now=NOW)
    session.rollback()
    assert [event.seq for event in _chain(session)] == [1, 2]
    assert session.exec(select(AuditHead)).one().seq == 2
    make_audit_events(session, 1)
    assert [event.seq for event in _chain(session)] == [1, 2, 3]


def test_unknown_outcome_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="outcome"):
        append_event(
            session,
            context=AuditContext.SYSTEM,
            action=AuditAction.CASE_READ,
            now=NOW,
            outcome="maybe",
        )
    assert _chain(session) == []


def test_a_failed_write_raises_audit_unavailable(engine: sa.Engine) -> None:
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    table.drop(engine)
    try:
        with Session(engine) as session, pytest.raises(AuditUnavailable) as raised:
            append_event(
                session, context=AuditContext.SYSTEM, action=AuditAction.CASE_READ, now=NOW
            )
    finally:
        table.create(engine)  # PostgreSQL's tables are shared by the session's tests
    assert raised.value.status == 503
    assert raised.value.slug == "audit-unavailable"


def test_list_events_pages_in_chain_order_and_records_the_reading(session: Session) -> None:
    make_audit_events(session, 7)
    admin = AuditContext(ActorKind.USER, uuid.uuid4(), None)

    def page(after_seq: int, limit: int) -> list[int]:
        events = list_events(session, audit=admin, now=NOW, after_seq=after_seq, limit=limit)
        return [event.seq for event in events]

    assert page(2, 3) == [3, 4, 5]
    assert page(5, 2) == [6, 7]
    assert page(0, 0) == [1]
    session.commit()
    readings = _chain(session)[7:]
    assert [event.action for event in readings] == ["audit.list"] * 3
    assert {event.actor_id for event in readings} == {admin.actor_id}


@pytest.mark.slow
@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_writers_leave_one_gapless_chain(
    db: str, request: pytest.FixtureRequest, tmp_path: object
) -> None:
    url = (
        f"sqlite:///{tmp_path}/concurrent.db"
        if db == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    engine = make_engine(url)
    tables = [AuditEvent.__table__, AuditHead.__table__]  # type: ignore[attr-defined]
    for table in tables:
        table.create(engine)
    try:
        _write_concurrently(engine)
        with Session(engine) as session:
            chain = _chain(session)
            head = session.exec(select(AuditHead)).one()
    finally:
        for table in tables:
            table.drop(engine)
        engine.dispose()

    total = WRITERS * EVENTS_PER_WRITER
    assert [event.seq for event in chain] == list(range(1, total + 1))
    previous = GENESIS_HASH
    for event in chain:
        assert event.prev_hash == previous
        assert event.hash == event_hash(event.model_dump())
        previous = event.hash
    assert (head.seq, head.hash) == (total, previous)
    assert len({event.actor_id for event in chain}) == WRITERS


def _write_concurrently(engine: sa.Engine) -> None:
    """WRITERS threads, each with its own session, committing one event at a time."""
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer() -> None:
        context = AuditContext(ActorKind.USER, uuid.uuid4(), None)
        try:
            start.wait()
            with Session(engine) as session:
                for _ in range(EVENTS_PER_WRITER):
                    append_event(
                        session,
                        context=context,
                        action=AuditAction.DOCUMENT_READ,
                        now=datetime.now(UTC),
                    )
                    session.commit()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread below
            errors.append(error)

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
