"""The key store on SQLite and PostgreSQL: create, cache, destroy, epochs, rotation."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from keys.errors import (
    InvalidKeyRequest,
    KeyDestroyed,
    KeyNotFound,
    KeyUnwrapFailed,
)
from keys.local import LocalKeyringProvider
from keys.models import KeyKind, KeyRecord, RootKeyPurpose, RootKeyRecord, RootKeyState
from keys.store import KeyStore

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=90)
EPOCH = "2031-11"
AFTER_EPOCH = datetime(2031, 12, 1, tzinfo=UTC)


class SimulatedCrash(RuntimeError):
    """Raised by the test provider to stop a job half-way, as a killed worker would."""


class CountingProvider:
    """Passes every call to a real keyring, counts them, and can fail the n-th wrap."""

    def __init__(self, inner: LocalKeyringProvider) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.destroyed: list[str] = []
        self.crash_on_wrap: int | None = None
        self.on_create: Callable[[], None] | None = None
        self.on_wrap: Callable[[str], None] | None = None  # called once, with the owner

    def create_root_key(self, *, description: str) -> str:
        self.calls["create"] += 1
        if self.on_create is not None:
            self.on_create()
        return self.inner.create_root_key(description=description)

    def wrap(self, *, root_key_id: str, key: bytes, owner: str) -> bytes:
        self.calls["wrap"] += 1
        if self.crash_on_wrap is not None and self.calls["wrap"] >= self.crash_on_wrap:
            raise SimulatedCrash
        if self.on_wrap is not None:
            hook, self.on_wrap = self.on_wrap, None
            hook(owner)
        return self.inner.wrap(root_key_id=root_key_id, key=key, owner=owner)

    def unsafe_unwrap(self, *, root_key_id: str, wrapped: bytes, owner: str) -> bytes:
        self.calls["unwrap"] += 1
        return self.inner.unsafe_unwrap(root_key_id=root_key_id, wrapped=wrapped, owner=owner)

    def unsafe_unwrap_many(
        self, *, root_key_id: str, items: Sequence[tuple[bytes, str]]
    ) -> list[bytes]:
        self.calls["unwrap"] += len(items)
        return self.inner.unsafe_unwrap_many(root_key_id=root_key_id, items=items)

    def destroy_root_key(self, root_key_id: str) -> None:
        self.calls["destroy"] += 1
        self.destroyed.append(root_key_id)
        self.inner.destroy_root_key(root_key_id)

    def check(self) -> None:
        self.inner.check()


@dataclass
class FakeTimer:
    seconds: float = 0.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def provider(tmp_path: Path) -> CountingProvider:
    return CountingProvider(LocalKeyringProvider(tmp_path / "keys" / "keyring.json"))


@pytest.fixture
def store(provider: CountingProvider) -> KeyStore:
    return KeyStore(provider=provider)


@pytest.fixture
def sessions(engine: sa.Engine) -> Callable[[], Session]:
    return lambda: Session(engine)


def same_instant(stored: datetime | None, expected: datetime) -> bool:
    """SQLite hands back naive UTC, PostgreSQL aware: compare the instant."""
    assert stored is not None
    return (stored if stored.tzinfo else stored.replace(tzinfo=UTC)) == expected


def key_row(session: Session, key_id: uuid.UUID) -> KeyRecord:
    session.expire_all()
    row = session.get(KeyRecord, key_id)
    assert row is not None
    return row


def count_rows(session: Session, table: type[KeyRecord] | type[RootKeyRecord]) -> int:
    return session.exec(select(func.count()).select_from(table)).one()


# -- create and unwrap ---------------------------------------------------------------------------


def test_create_and_unwrap(session: Session, store: KeyStore, provider: CountingProvider) -> None:
    key_id = store.create_key(session, kind="case", now=NOW)
    session.commit()

    material = store.unsafe_key_material(session, key_id)
    row = key_row(session, key_id)

    assert len(material) == 32
    assert row.kind == KeyKind.CASE
    assert row.wrapped is not None
    assert material not in row.wrapped
    assert row.destroyed_at is None
    root = session.get(RootKeyRecord, row.root_key_id)
    assert root is not None
    assert (root.purpose, root.state) == (RootKeyPurpose.ACTIVE, RootKeyState.ACTIVE)
    # Another process (a fresh store, empty cache) reads the same key.
    assert KeyStore(provider=provider).unsafe_key_material(session, key_id) == material


def test_every_key_is_different_and_shares_the_active_root_key(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    ids = [store.create_key(session, kind=kind, now=NOW) for kind in ("case", "patient", "scope")]
    session.commit()

    materials = {store.unsafe_key_material(session, key_id) for key_id in ids}
    roots = {key_row(session, key_id).root_key_id for key_id in ids}

    assert len(materials) == 3
    assert len(roots) == 1
    assert provider.calls["create"] == 1
    assert store.ensure_active_root_key(session, now=NOW) in roots


def test_a_wrapped_key_copied_onto_another_row_does_not_unwrap(
    session: Session, store: KeyStore
) -> None:
    first = store.create_key(session, kind="case", now=NOW)
    second = store.create_key(session, kind="case", now=NOW)
    session.commit()
    store.unsafe_key_material(session, second)  # cached: the cache must not hide the swap
    key_row(session, second).wrapped = key_row(session, first).wrapped
    session.commit()

    with pytest.raises(KeyUnwrapFailed):
        store.unsafe_key_material(session, second)


def test_unknown_key_is_not_found(session: Session, store: KeyStore) -> None:
    with pytest.raises(KeyNotFound):
        store.unsafe_key_material(session, uuid.uuid4())


def test_unknown_kind_is_refused_and_nothing_stored(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    with pytest.raises(InvalidKeyRequest):
        store.create_key(session, kind="invoice", now=NOW)

    assert count_rows(session, KeyRecord) == 0
    assert provider.calls["wrap"] == 0


def test_create_under_a_destroyed_root_key_is_refused(session: Session, store: KeyStore) -> None:
    epoch_root = store.epoch_root_key(session, epoch=EPOCH, now=NOW)
    store.destroy_epoch(session, epoch=EPOCH, now=AFTER_EPOCH)
    session.commit()

    with pytest.raises(KeyDestroyed):
        store.create_key(session, kind="case", now=NOW, root_key_id=epoch_root)

    assert count_rows(session, KeyRecord) == 0


# -- the cache -----------------------------------------------------------------------------------


def test_cache_hit_does_not_ask_the_provider(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    key_id = store.create_key(session, kind="case", now=NOW)
    session.commit()

    first = store.unsafe_key_material(session, key_id)
    second = store.unsafe_key_material(session, key_id)

    assert first == second
    assert provider.calls["unwrap"] == 1


def test_cache_is_bounded_in_size(session: Session, provider: CountingProvider) -> None:
    store = KeyStore(provider=provider, cache_size=2)
    ids = [store.create_key(session, kind="case", now=NOW) for _ in range(3)]
    session.commit()

    for key_id in ids:
        store.unsafe_key_material(session, key_id)
    assert provider.calls["unwrap"] == 3
    store.unsafe_key_material(session, ids[2])
    assert provider.calls["unwrap"] == 3  # still cached
    store.unsafe_key_material(session, ids[0])
    assert provider.calls["unwrap"] == 4  # pushed out by the third


def test_cache_is_bounded_in_lifetime(session: Session, provider: CountingProvider) -> None:
    timer = FakeTimer()
    store = KeyStore(provider=provider, cache_ttl_seconds=10.0, timer=timer)
    key_id = store.create_key(session, kind="case", now=NOW)
    session.commit()

    store.unsafe_key_material(session, key_id)
    timer.seconds = 9.0
    store.unsafe_key_material(session, key_id)
    assert provider.calls["unwrap"] == 1
    timer.seconds = 10.5
    store.unsafe_key_material(session, key_id)
    assert provider.calls["unwrap"] == 2


# -- destroy -------------------------------------------------------------------------------------


def test_destroy_makes_the_key_unreadable_and_leaves_a_tombstone(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    key_id = store.create_key(session, kind="case", now=NOW)
    kept = store.create_key(session, kind="case", now=NOW)
    session.commit()
    other_process = KeyStore(provider=provider)
    other_process.unsafe_key_material(session, key_id)  # cached over there
    store.unsafe_key_material(session, key_id)  # and here

    store.destroy(session, key_id, reason="test", now=LATER)
    session.commit()

    with pytest.raises(KeyDestroyed):
        store.unsafe_key_material(session, key_id)
    with pytest.raises(KeyDestroyed):  # its cache does not outlive the row
        other_process.unsafe_key_material(session, key_id)
    row = key_row(session, key_id)
    assert row.wrapped is None
    assert row.root_key_id is None
    assert same_instant(row.destroyed_at, LATER)
    assert row.destroy_reason == "test"
    assert len(store.unsafe_key_material(session, kept)) == 32


def test_destroy_twice_keeps_the_first_tombstone(session: Session, store: KeyStore) -> None:
    key_id = store.create_key(session, kind="patient", now=NOW)
    store.destroy(session, key_id, reason="erasure", now=NOW)
    session.commit()

    store.destroy(session, key_id, reason="test", now=LATER)
    session.commit()

    row = key_row(session, key_id)
    assert same_instant(row.destroyed_at, NOW)
    assert row.destroy_reason == "erasure"


def test_destroy_unknown_key_is_not_found(session: Session, store: KeyStore) -> None:
    with pytest.raises(KeyNotFound):
        store.destroy(session, uuid.uuid4(), reason="test", now=NOW)


@pytest.mark.parametrize("reason", ["", "Patient asked by phone", "x" * 40, "retention;drop"])
def test_destroy_reason_must_be_a_short_code(
    session: Session, store: KeyStore, reason: str
) -> None:
    key_id = store.create_key(session, kind="case", now=NOW)
    session.commit()

    with pytest.raises(InvalidKeyRequest):
        store.destroy(session, key_id, reason=reason, now=NOW)

    session.commit()
    row = key_row(session, key_id)
    assert row.destroyed_at is None
    assert row.destroy_reason is None
    assert row.wrapped is not None


def test_a_destroyed_key_cannot_be_created_again(session: Session, store: KeyStore) -> None:
    key_id = store.create_key(session, kind="case", now=NOW)
    root_key_id = key_row(session, key_id).root_key_id
    store.destroy(session, key_id, reason="test", now=NOW)
    session.commit()
    session.expunge_all()

    session.add(
        KeyRecord(
            id=key_id, kind=KeyKind.CASE, root_key_id=root_key_id, wrapped=b"x", created_at=LATER
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()

    row = key_row(session, key_id)
    assert row.wrapped is None
    assert same_instant(row.destroyed_at, NOW)


# -- retention epochs ----------------------------------------------------------------------------


def test_epoch_root_key_is_created_once(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    first = store.epoch_root_key(session, epoch=EPOCH, now=NOW)
    again = store.epoch_root_key(session, epoch=EPOCH, now=LATER)
    other = store.epoch_root_key(session, epoch="2031-12", now=NOW)
    session.commit()

    assert first == again != other
    assert provider.calls["create"] == 2
    root = session.get(RootKeyRecord, first)
    assert root is not None
    assert (root.purpose, root.epoch, root.state) == (
        RootKeyPurpose.EPOCH,
        EPOCH,
        RootKeyState.ACTIVE,
    )


@pytest.mark.parametrize("epoch", ["2031-13", "2031-00", "31-11", "2031-1", "2031-11-01", ""])
def test_malformed_epoch_is_refused(
    session: Session, store: KeyStore, provider: CountingProvider, epoch: str
) -> None:
    with pytest.raises(InvalidKeyRequest):
        store.epoch_root_key(session, epoch=epoch, now=NOW)
    with pytest.raises(InvalidKeyRequest):
        store.destroy_epoch(session, epoch=epoch, now=AFTER_EPOCH)

    assert count_rows(session, RootKeyRecord) == 0
    assert provider.calls["create"] == 0


def test_rewrap_to_an_epoch_then_destroy_epoch_shreds_the_key_and_its_backups(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    completed = store.create_key(session, kind="case", now=NOW)
    still_open = store.create_key(session, kind="case", now=NOW)
    session.commit()
    material = store.unsafe_key_material(session, completed)
    epoch_root = store.epoch_root_key(session, epoch=EPOCH, now=NOW)

    store.rewrap(session, completed, root_key_id=epoch_root, now=LATER)
    session.commit()

    row = key_row(session, completed)
    assert row.root_key_id == epoch_root
    assert same_instant(row.rewrapped_at, LATER)
    assert KeyStore(provider=provider).unsafe_key_material(session, completed) == material
    # A database backup taken now holds this row, wrapped under the epoch key.
    assert row.wrapped is not None
    backup_root_key_id, backup_wrapped = row.root_key_id, row.wrapped

    destroyed = store.destroy_epoch(session, epoch=EPOCH, now=AFTER_EPOCH)
    session.commit()

    assert destroyed == 1
    assert epoch_root in provider.destroyed
    with pytest.raises(KeyDestroyed):
        store.unsafe_key_material(session, completed)
    row = key_row(session, completed)
    assert (row.wrapped, row.destroy_reason) == (None, "retention")
    assert same_instant(row.destroyed_at, AFTER_EPOCH)
    root = session.get(RootKeyRecord, epoch_root)
    assert root is not None
    assert root.state == RootKeyState.DESTROYED
    assert len(store.unsafe_key_material(session, still_open)) == 32
    assert store.destroy_epoch(session, epoch=EPOCH, now=AFTER_EPOCH) == 0  # idempotent
    with pytest.raises(KeyDestroyed):  # nothing goes under a shredded epoch again
        store.epoch_root_key(session, epoch=EPOCH, now=AFTER_EPOCH)

    # Restore the backup (the key row and the root key row as they were) into the database:
    # the root key is gone from the provider, so the restored row still does not unwrap.
    session.execute(
        sa.update(KeyRecord)
        .where(col(KeyRecord.id) == completed)
        .values(destroyed_at=None, destroy_reason=None)
        .values(root_key_id=backup_root_key_id, wrapped=backup_wrapped)
    )
    session.execute(
        sa.update(RootKeyRecord)
        .where(col(RootKeyRecord.id) == epoch_root)
        .values(state=RootKeyState.ACTIVE, destroyed_at=None)
    )
    session.commit()
    with pytest.raises(KeyDestroyed):
        KeyStore(provider=provider).unsafe_key_material(session, completed)
    with pytest.raises(KeyDestroyed):
        provider.unsafe_unwrap(
            root_key_id=epoch_root, wrapped=backup_wrapped, owner=f"case:{completed}"
        )


def test_destroy_epoch_before_its_month_is_over_is_refused(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    key_id = store.create_key(
        session,
        kind="case",
        now=NOW,
        root_key_id=store.epoch_root_key(session, epoch=EPOCH, now=NOW),
    )
    session.commit()

    with pytest.raises(InvalidKeyRequest):
        store.destroy_epoch(session, epoch=EPOCH, now=AFTER_EPOCH - timedelta(seconds=1))

    session.commit()
    assert provider.calls["destroy"] == 0
    assert len(store.unsafe_key_material(session, key_id)) == 32


def test_destroy_epoch_that_never_existed_destroys_nothing(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    assert store.destroy_epoch(session, epoch="2020-01", now=NOW) == 0
    assert provider.calls["destroy"] == 0


def test_rewrap_a_destroyed_key_is_refused(session: Session, store: KeyStore) -> None:
    key_id = store.create_key(session, kind="case", now=NOW)
    epoch_root = store.epoch_root_key(session, epoch=EPOCH, now=NOW)
    store.destroy(session, key_id, reason="test", now=NOW)
    session.commit()

    with pytest.raises(KeyDestroyed):
        store.rewrap(session, key_id, root_key_id=epoch_root, now=LATER)

    assert key_row(session, key_id).wrapped is None


def test_rewrap_racing_a_destroy_does_not_bring_the_key_back(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    key_id = store.create_key(session, kind="case", now=NOW)
    epoch_root = store.epoch_root_key(session, epoch=EPOCH, now=NOW)
    session.commit()

    def erasure_commits_meanwhile(owner: str) -> None:
        # Between the rewrap's read and its write, the key is destroyed (in the same
        # transaction here: SQLite would make a second writer wait).
        store.destroy(session, key_id, reason="erasure", now=LATER)

    provider.on_wrap = erasure_commits_meanwhile

    with pytest.raises(KeyDestroyed):
        store.rewrap(session, key_id, root_key_id=epoch_root, now=LATER)
    session.commit()

    row = key_row(session, key_id)
    assert (row.wrapped, row.root_key_id, row.destroy_reason) == (None, None, "erasure")


def test_a_stale_copy_in_the_session_does_not_outlive_a_destroy(
    engine: sa.Engine, store: KeyStore
) -> None:
    with Session(engine) as setup:
        key_id = store.create_key(setup, kind="case", now=NOW)
        setup.commit()
    with Session(engine, expire_on_commit=False) as long_lived:
        assert len(store.unsafe_key_material(long_lived, key_id)) == 32
        held = long_lived.get(KeyRecord, key_id)  # the session keeps the live row
        long_lived.commit()
        with Session(engine) as other_process:
            store.destroy(other_process, key_id, reason="erasure", now=LATER)
            other_process.commit()

        with pytest.raises(KeyDestroyed):
            store.unsafe_key_material(long_lived, key_id)
        store.destroy(long_lived, key_id, reason="test", now=LATER + timedelta(days=1))
        long_lived.commit()

        assert held is not None
        assert held.destroy_reason == "erasure"  # the first tombstone kept


# -- racing first uses ---------------------------------------------------------------------------


def test_concurrent_first_use_keeps_one_active_root_key(
    session: Session, store: KeyStore, provider: CountingProvider
) -> None:
    winner = provider.inner.create_root_key(description="the other process")

    def other_process_records_first() -> None:
        session.add(
            RootKeyRecord(
                id=winner,
                purpose=RootKeyPurpose.ACTIVE,
                state=RootKeyState.ACTIVE,
                created_at=NOW,
            )
        )
        session.flush()

    provider.on_create = other_process_records_first

    # The store looked before the other process recorded its key, then lost the race.
    assert store.ensure_active_root_key(session, now=NOW) == winner

    session.commit()
    assert count_rows(session, RootKeyRecord) == 1
    assert len(provider.destroyed) == 1  # the loser's key, which wrapped nothing
    provider.on_create = None
    key_id = store.create_key(session, kind="case", now=NOW)
    assert key_row(session, key_id).root_key_id == winner


# -- rotation ------------------------------------------------------------------------------------


@dataclass
class Population:
    live: dict[uuid.UUID, bytes]  # key id -> material, under the active root key
    epoch_key: uuid.UUID
    epoch_root: str
    tombstone: uuid.UUID
    old_root: str


def populate(session: Session, store: KeyStore, count: int = 7) -> Population:
    kinds = ["case", "patient", "scope"]
    live = [store.create_key(session, kind=kinds[i % 3], now=NOW) for i in range(count)]
    epoch_root = store.epoch_root_key(session, epoch=EPOCH, now=NOW)
    epoch_key = store.create_key(session, kind="case", now=NOW, root_key_id=epoch_root)
    tombstone = store.create_key(session, kind="case", now=NOW)
    store.destroy(session, tombstone, reason="test", now=NOW)
    population = Population(
        live={key_id: store.unsafe_key_material(session, key_id) for key_id in live},
        epoch_key=epoch_key,
        epoch_root=epoch_root,
        tombstone=tombstone,
        old_root=store.ensure_active_root_key(session, now=NOW),
    )
    session.commit()
    return population


def root_key_of(session: Session, key_id: uuid.UUID) -> str | None:
    return key_row(session, key_id).root_key_id


def test_rotate_moves_every_live_key_and_retires_the_old_root_key(
    session: Session,
    sessions: Callable[[], Session],
    store: KeyStore,
    provider: CountingProvider,
) -> None:
    population = populate(session, store)
    session.close()

    report = store.rotate(sessions, now=LATER, batch_size=3)

    assert report.rewrapped == 7
    assert report.resumed is False
    assert report.retired_root_key_ids == (population.old_root,)
    new_root = report.new_root_key_id
    fresh = KeyStore(provider=provider)  # no cached material: everything unwraps anew
    for key_id, material in population.live.items():
        assert root_key_of(session, key_id) == new_root
        assert fresh.unsafe_key_material(session, key_id) == material
        assert same_instant(key_row(session, key_id).rewrapped_at, LATER)
    assert root_key_of(session, population.epoch_key) == population.epoch_root
    assert key_row(session, population.tombstone).wrapped is None
    old = session.get(RootKeyRecord, population.old_root)
    assert old is not None
    assert old.state == RootKeyState.RETIRED
    assert same_instant(old.retired_at, LATER)
    assert store.ensure_active_root_key(session, now=LATER) == new_root
    assert population.old_root not in provider.destroyed  # that waits for the backup window


def test_rotate_moves_a_key_that_lands_under_the_old_root_key_late(
    engine: sa.Engine, store: KeyStore, provider: CountingProvider
) -> None:
    with Session(engine) as setup:
        population = populate(setup, store)
    opened: list[Session] = []
    late: list[uuid.UUID] = []

    def sessions() -> Session:
        session = Session(engine)
        opened.append(session)
        # Calls: start, three batches of 3+3+1, the empty batch, then the finishing pass.
        # Just before it, a key lands under the old root key, as one created by a request
        # that read the active root key before the rotation began and committed only now.
        if len(opened) == 6:
            late_id = uuid.uuid4()
            session.add(
                KeyRecord(
                    id=late_id,
                    kind=KeyKind.CASE,
                    root_key_id=population.old_root,
                    wrapped=provider.inner.wrap(
                        root_key_id=population.old_root, key=b"L" * 32, owner=f"case:{late_id}"
                    ),
                    created_at=LATER,
                )
            )
            session.flush()
            late.append(late_id)
        return session

    report = store.rotate(sessions, now=LATER, batch_size=3)

    assert late, "the late key was not planted"
    assert report.rewrapped == 8
    assert report.retired_root_key_ids == (population.old_root,)
    with Session(engine) as check:
        assert root_key_of(check, late[0]) == report.new_root_key_id
        assert store.unsafe_key_material(check, late[0]) == b"L" * 32


def test_rotate_leaves_a_key_moved_to_an_epoch_meanwhile_where_it_is(
    engine: sa.Engine, store: KeyStore, provider: CountingProvider
) -> None:
    with Session(engine) as setup:
        population = populate(setup, store)
    opened: list[Session] = []
    moved: list[uuid.UUID] = []

    def sessions() -> Session:
        opened.append(Session(engine))
        return opened[-1]

    def retention_moves_it_to_its_epoch(owner: str) -> None:
        # While the rotation re-wraps this key, the retention job moves it to its epoch key
        # (in the same transaction here: SQLite would make a second writer wait).
        key_id = uuid.UUID(owner.split(":", 1)[1])
        store.rewrap(opened[-1], key_id, root_key_id=population.epoch_root, now=LATER)
        moved.append(key_id)

    provider.on_wrap = retention_moves_it_to_its_epoch

    report = store.rotate(sessions, now=LATER, batch_size=3)

    assert len(moved) == 1
    assert report.rewrapped == 6
    with Session(engine) as check:
        assert root_key_of(check, moved[0]) == population.epoch_root
        fresh = KeyStore(provider=provider)
        assert fresh.unsafe_key_material(check, moved[0]) == population.live[moved[0]]


@pytest.mark.parametrize("crash_on_wrap", [1, 4], ids=["before-first-batch", "after-first-batch"])
def test_rotate_is_resumable_after_a_crash(
    session: Session,
    sessions: Callable[[], Session],
    store: KeyStore,
    provider: CountingProvider,
    crash_on_wrap: int,
) -> None:
    population = populate(session, store)
    session.close()
    provider.crash_on_wrap = provider.calls["wrap"] + crash_on_wrap

    with pytest.raises(SimulatedCrash):
        store.rotate(sessions, now=LATER, batch_size=3)

    # Half-way: every key under the old or the new root key, and every one still readable.
    provider.crash_on_wrap = None
    fresh = KeyStore(provider=provider)
    roots = {root_key_of(session, key_id) for key_id in population.live}
    new_root = store.ensure_active_root_key(session, now=LATER)
    assert new_root != population.old_root
    assert roots <= {population.old_root, new_root}
    assert sum(root_key_of(session, k) == new_root for k in population.live) == crash_on_wrap - 1
    for key_id, material in population.live.items():
        assert fresh.unsafe_key_material(session, key_id) == material
    old = session.get(RootKeyRecord, population.old_root)
    assert old is not None
    assert (old.state, old.retired_at) == (RootKeyState.RETIRED, None)
    created_meanwhile = store.create_key(session, kind="case", now=LATER)
    assert root_key_of(session, created_meanwhile) == new_root
    session.commit()
    session.close()

    report = store.rotate(sessions, now=LATER + timedelta(hours=1), batch_size=3)

    assert report.resumed is True
    assert report.new_root_key_id == new_root
    assert report.rewrapped == 7 - (crash_on_wrap - 1)
    assert report.retired_root_key_ids == (population.old_root,)
    fresh = KeyStore(provider=provider)
    for key_id, material in population.live.items():
        assert root_key_of(session, key_id) == new_root
        assert fresh.unsafe_key_material(session, key_id) == material
    assert root_key_of(session, population.epoch_key) == population.epoch_root
    assert count_rows(session, RootKeyRecord) == 3  # old, new and the epoch: no third active
    old = session.get(RootKeyRecord, population.old_root)
    assert old is not None
    assert old.state == RootKeyState.RETIRED
    assert same_instant(old.retired_at, LATER + timedelta(hours=1))


def test_rotate_without_any_root_key_creates_the_first(
    session: Session, sessions: Callable[[], Session], store: KeyStore
) -> None:
    report = store.rotate(sessions, now=NOW)

    assert report.rewrapped == 0
    assert report.retired_root_key_ids == ()
    assert store.ensure_active_root_key(session, now=NOW) == report.new_root_key_id


def test_retired_root_keys_are_destroyed_only_after_the_window_and_when_unused(
    session: Session,
    sessions: Callable[[], Session],
    store: KeyStore,
    provider: CountingProvider,
) -> None:
    population = populate(session, store, count=2)
    first_key = next(iter(population.live))
    backup = key_row(session, first_key).wrapped  # under the old root key
    assert backup is not None
    session.close()
    store.rotate(sessions, now=LATER)

    assert store.destroy_retired_root_keys(session, older_than=LATER, now=LATER) == []
    assert provider.destroyed == []

    destroyed = store.destroy_retired_root_keys(
        session, older_than=LATER + timedelta(days=35), now=LATER + timedelta(days=35)
    )
    session.commit()

    assert destroyed == [population.old_root]
    assert provider.destroyed == [population.old_root]
    old = session.get(RootKeyRecord, population.old_root)
    assert old is not None
    assert old.state == RootKeyState.DESTROYED
    with pytest.raises(KeyDestroyed):  # a backup from before the rotation no longer opens
        provider.unsafe_unwrap(
            root_key_id=population.old_root, wrapped=backup, owner=f"case:{first_key}"
        )
    for key_id, material in population.live.items():  # the live keys moved on unharmed
        assert KeyStore(provider=provider).unsafe_key_material(session, key_id) == material


def test_a_retired_root_key_still_in_use_is_never_destroyed(
    session: Session,
    sessions: Callable[[], Session],
    store: KeyStore,
    provider: CountingProvider,
) -> None:
    population = populate(session, store, count=4)
    session.close()
    provider.crash_on_wrap = provider.calls["wrap"] + 2
    with pytest.raises(SimulatedCrash):
        store.rotate(sessions, now=LATER, batch_size=1)
    provider.crash_on_wrap = None

    destroyed = store.destroy_retired_root_keys(
        session, older_than=LATER + timedelta(days=365), now=LATER + timedelta(days=365)
    )

    assert destroyed == []
    assert provider.destroyed == []
    for key_id, material in population.live.items():
        assert store.unsafe_key_material(session, key_id) == material


def test_a_key_committed_under_a_retired_root_key_keeps_it_alive_until_moved(
    session: Session,
    sessions: Callable[[], Session],
    store: KeyStore,
    provider: CountingProvider,
) -> None:
    population = populate(session, store, count=2)
    session.close()
    first = store.rotate(sessions, now=LATER)
    # A request that read the active root key before the rotation commits its new key now.
    late_id = uuid.uuid4()
    session.add(
        KeyRecord(
            id=late_id,
            kind=KeyKind.CASE,
            root_key_id=population.old_root,
            wrapped=provider.inner.wrap(
                root_key_id=population.old_root, key=b"L" * 32, owner=f"case:{late_id}"
            ),
            created_at=LATER,
        )
    )
    session.commit()
    far_later = LATER + timedelta(days=365)

    assert store.destroy_retired_root_keys(session, older_than=far_later, now=far_later) == []
    assert store.unsafe_key_material(session, late_id) == b"L" * 32

    session.close()
    second = store.rotate(sessions, now=far_later)  # moves it on, from any retired key
    destroyed = store.destroy_retired_root_keys(
        session, older_than=far_later + timedelta(days=1), now=far_later + timedelta(days=1)
    )
    session.commit()

    assert second.rewrapped == 3
    assert sorted(destroyed) == sorted([population.old_root, first.new_root_key_id])
    assert root_key_of(session, late_id) == second.new_root_key_id
    assert KeyStore(provider=provider).unsafe_key_material(session, late_id) == b"L" * 32


# -- rotation schedule ---------------------------------------------------------------------------


def test_rotation_is_due_once_a_key_under_the_active_root_key_is_destroyed(
    session: Session, sessions: Callable[[], Session], store: KeyStore
) -> None:
    kept = store.create_key(session, kind="patient", now=NOW)
    erased = store.create_key(session, kind="case", now=NOW)
    session.commit()
    not_old = NOW - timedelta(days=90)  # the active root key is younger than this
    assert store.rotation_due(session, created_before=not_old) is False

    store.destroy(session, erased, reason="erasure", now=NOW + timedelta(hours=1))
    session.commit()

    # A copy of the database taken before still holds it under the active root key.
    assert store.rotation_due(session, created_before=not_old) is True
    session.close()
    report = store.rotate(sessions, now=LATER)
    assert report.rewrapped == 1  # the live key; the tombstone has nothing to move
    assert store.rotation_due(session, created_before=NOW) is False
    # The live key was moved under the new root key: destroying it makes rotation due again.
    store.destroy(session, kept, reason="erasure", now=LATER + timedelta(days=1))
    session.commit()
    assert store.rotation_due(session, created_before=NOW) is True


def test_keys_destroyed_under_other_root_keys_do_not_make_rotation_due(
    session: Session, sessions: Callable[[], Session], store: KeyStore
) -> None:
    epoch_root = store.epoch_root_key(session, epoch=EPOCH, now=NOW)
    under_epoch = store.create_key(session, kind="case", now=NOW, root_key_id=epoch_root)
    under_old = store.create_key(session, kind="case", now=NOW)
    session.commit()
    session.close()
    store.rotate(sessions, now=LATER)
    # Destroyed before the rotation: a backup from before it needs the old root key, which
    # the rotation retired (and the backup window destroys).
    store.destroy(session, under_old, reason="test", now=LATER - timedelta(hours=1))
    session.commit()

    assert store.destroy_epoch(session, epoch=EPOCH, now=AFTER_EPOCH) == 1
    session.commit()

    assert key_row(session, under_epoch).destroyed_at is not None
    assert store.rotation_due(session, created_before=LATER) is False


def test_rotation_due_is_one_query_that_reads_the_destroyed_at_index(
    engine: sa.Engine, session: Session, store: KeyStore
) -> None:
    for _ in range(3):
        store.destroy(
            session, store.create_key(session, kind="case", now=NOW), reason="test", now=NOW
        )
    session.commit()
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's transaction start (infra.db)
            statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        assert store.rotation_due(session, created_before=NOW) is True
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)

    assert len(statements) == 1
    if engine.dialect.name == "sqlite":
        statement, parameters = statements[0]
        plan = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        details = [str(row[-1]) for row in plan]
        assert any("ix_key_records_destroyed_at" in detail for detail in details), details
