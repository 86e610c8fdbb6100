"""The key store: case, patient and scope keys, wrapped under root keys, in the database.

Every key is a random 32-byte AES key stored only wrapped, bound to the owner
``"<kind>:<key id>"`` (so a wrapped key copied onto another row does not unwrap). Methods take
the caller's session and only add and flush: the caller commits. ``rotate`` is the exception;
it works in batches and commits each one.

Crypto-shredding: ``destroy`` turns a key's row into a tombstone (wrapped bytes gone). Against
database backups, keys of completed cases are re-wrapped under the root key of their retention
epoch, and ``destroy_epoch`` destroys that root key in the provider, so a row restored from an
older backup no longer unwraps either.

Unwrapped keys are cached in memory, bounded in size and lifetime. The row is read on every
call, so a key destroyed by another process is refused as soon as that process has committed.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from cachetools import TTLCache
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from keys.errors import InvalidKeyRequest, KeyDestroyed, KeyNotFound
from keys.interfaces import RootKeyProvider
from keys.models import KeyKind, KeyRecord, RootKeyPurpose, RootKeyRecord, RootKeyState

KEY_SIZE = 32
RETENTION_REASON = "retention"
ACTIVE_ROOT_KEY_DESCRIPTION = "medvault active root key"
_EPOCH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_REASON = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# A rotation pass re-reads for keys that landed under the old root key while it ran; a few
# passes are plenty, and what is left is finished by the next run.
_ROTATION_PASSES = 3


@dataclass(frozen=True)
class RotationReport:
    new_root_key_id: str
    retired_root_key_ids: tuple[str, ...]  # retired by this run (their keys all moved)
    rewrapped: int
    resumed: bool  # this run finished a rotation that an earlier run had started


@dataclass(frozen=True)
class _CachedKey:
    wrapped: bytes  # the row's wrapped bytes the material came from
    material: bytes = field(repr=False)


class KeyStore:
    """Creates, unwraps, re-wraps, rotates and destroys keys; see the module docstring."""

    def __init__(
        self,
        *,
        provider: RootKeyProvider,
        cache_size: int = 1024,
        cache_ttl_seconds: float = 300.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self._cache: TTLCache[uuid.UUID, _CachedKey] = TTLCache(
            maxsize=cache_size, ttl=cache_ttl_seconds, timer=timer
        )
        self._cache_lock = threading.Lock()

    # -- root keys ---------------------------------------------------------------------------

    def ensure_active_root_key(self, session: Session, *, now: datetime) -> str:
        """The id of the current active root key; created (provider and row) when there is none."""
        current = _active_root_key(session)
        if current is not None:
            return current.id
        new_id = self.provider.create_root_key(description=ACTIVE_ROOT_KEY_DESCRIPTION)
        record = RootKeyRecord(
            id=new_id, purpose=RootKeyPurpose.ACTIVE, state=RootKeyState.ACTIVE, created_at=now
        )
        return self._record_new_root_key(session, record, lambda: _active_root_key(session)).id

    def epoch_root_key(self, session: Session, *, epoch: str, now: datetime) -> str:
        """The root key of retention epoch ``epoch`` ("YYYY-MM"), created when there is none."""
        _require_epoch(epoch)
        record = _epoch_root_key(session, epoch)
        if record is None:
            new_id = self.provider.create_root_key(description=f"medvault retention epoch {epoch}")
            record = self._record_new_root_key(
                session,
                RootKeyRecord(
                    id=new_id,
                    purpose=RootKeyPurpose.EPOCH,
                    epoch=epoch,
                    state=RootKeyState.ACTIVE,
                    created_at=now,
                ),
                lambda: _epoch_root_key(session, epoch),
            )
        if record.state == RootKeyState.DESTROYED:
            raise KeyDestroyed("the root key of that retention epoch was destroyed")
        return record.id

    # -- keys --------------------------------------------------------------------------------

    def create_key(
        self,
        session: Session,
        *,
        kind: KeyKind | str,
        now: datetime,
        root_key_id: str | None = None,
    ) -> uuid.UUID:
        """A new random key, stored wrapped under ``root_key_id`` or the active root key."""
        key_kind = _require_kind(kind)
        if root_key_id is None:
            root_key_id = self.ensure_active_root_key(session, now=now)
        else:
            _require_usable_root_key(session, root_key_id)
        key_id = uuid.uuid4()
        wrapped = self.provider.wrap(
            root_key_id=root_key_id, key=os.urandom(KEY_SIZE), owner=_owner(key_kind, key_id)
        )
        session.add(
            KeyRecord(
                id=key_id, kind=key_kind, root_key_id=root_key_id, wrapped=wrapped, created_at=now
            )
        )
        session.flush()
        return key_id

    def unsafe_key_material(self, session: Session, key_id: uuid.UUID) -> bytes:
        """The plaintext key. Raises KeyNotFound, KeyDestroyed, KmsUnavailable, KeyUnwrapFailed."""
        record = _live_record(session, key_id)
        wrapped, root_key_id = _wrapping(record)
        with self._cache_lock:
            cached = self._cache.get(key_id)
        if cached is not None and cached.wrapped == wrapped:
            return cached.material
        root = session.get(RootKeyRecord, root_key_id)
        if root is not None and root.state == RootKeyState.DESTROYED:
            raise KeyDestroyed("the root key was destroyed")
        material = self.provider.unsafe_unwrap(
            root_key_id=root_key_id, wrapped=wrapped, owner=_owner(record.kind, record.id)
        )
        with self._cache_lock:
            self._cache[key_id] = _CachedKey(wrapped=wrapped, material=material)
        return material

    def destroy(self, session: Session, key_id: uuid.UUID, *, reason: str, now: datetime) -> None:
        """Crypto-shred one key: its row becomes a tombstone. Destroying twice is harmless."""
        _require_reason(reason)
        record = _fresh_record(session, key_id)
        if record is None:
            raise KeyNotFound("no such key")
        self._evict(key_id)
        if record.destroyed_at is not None:
            return  # keep the first tombstone: it says when the key really went
        record.wrapped = None
        record.root_key_id = None
        record.destroyed_at = now
        record.destroy_reason = reason
        session.flush()

    def rewrap(
        self, session: Session, key_id: uuid.UUID, *, root_key_id: str, now: datetime
    ) -> None:
        """Move a key under another root key (same id, same material). Idempotent."""
        record = _live_record(session, key_id)
        if record.root_key_id == root_key_id:
            return
        _require_usable_root_key(session, root_key_id)
        material = self.unsafe_key_material(session, key_id)
        wrapped = self.provider.wrap(
            root_key_id=root_key_id, key=material, owner=_owner(record.kind, record.id)
        )
        # Written only if the key is still alive: a destroy that committed meanwhile wins.
        if not _store_rewrapped(session, key_id, root_key_id=root_key_id, wrapped=wrapped, now=now):
            session.expire(record)  # what this session saw is stale
            raise KeyDestroyed("the key was destroyed")

    # -- destruction of root keys ------------------------------------------------------------

    def destroy_epoch(self, session: Session, *, epoch: str, now: datetime) -> int:
        """Destroy the root key of a past retention epoch and every key still under it.

        Returns how many keys were destroyed by this call (0 when run again). The provider's
        key goes first: from then on no copy of those rows, backups included, unwraps.
        """
        _require_epoch(epoch)
        if now < _end_of_month(epoch, now):
            raise InvalidKeyRequest("a retention epoch is destroyed only after its month is over")
        root = _epoch_root_key(session, epoch)
        if root is None:
            return 0
        self.provider.destroy_root_key(root.id)
        if root.state != RootKeyState.DESTROYED:
            root.state = RootKeyState.DESTROYED
            root.destroyed_at = now
        under_root = (
            col(KeyRecord.root_key_id) == root.id,
            col(KeyRecord.destroyed_at).is_(None),
        )
        key_ids = list(session.scalars(sa.select(col(KeyRecord.id)).where(*under_root)))
        result = cast(
            "CursorResult[Any]",
            session.execute(
                sa.update(KeyRecord)
                .where(*under_root)
                .values(
                    wrapped=None,
                    root_key_id=None,
                    destroyed_at=now,
                    destroy_reason=RETENTION_REASON,
                )
                .execution_options(synchronize_session="fetch")
            ),
        )
        session.flush()
        self._evict(*key_ids)
        return int(result.rowcount)

    def destroy_retired_root_keys(
        self, session: Session, *, older_than: datetime, now: datetime
    ) -> list[str]:
        """Destroy root keys retired before ``older_than`` that no live key uses any more.

        ``older_than`` is now minus the backup window: a backup taken before a key moved off
        a retired root key still needs that root key until the backup expires.
        """
        candidates = session.scalars(
            sa.select(RootKeyRecord).where(
                col(RootKeyRecord.purpose) == RootKeyPurpose.ACTIVE,
                col(RootKeyRecord.state) == RootKeyState.RETIRED,
                col(RootKeyRecord.retired_at).is_not(None),
                col(RootKeyRecord.retired_at) < older_than,
                ~_used_by_live_key(),
            )
        ).all()
        for root in candidates:
            self.provider.destroy_root_key(root.id)
            root.state = RootKeyState.DESTROYED
            root.destroyed_at = now
        session.flush()
        return [root.id for root in candidates]

    # -- rotation ----------------------------------------------------------------------------

    def rotate(
        self, session_factory: Callable[[], Session], *, now: datetime, batch_size: int = 500
    ) -> RotationReport:
        """Move every live key off the active root key onto a new one; retire the old one.

        Crash-safe and resumable: the old key is marked retired (``retired_at`` NULL) in the
        same transaction that records the new one; keys move in committed batches, each from
        the old root key to the new one with a compare-and-swap, and both root keys stay
        usable throughout. A run that finds a retired key with ``retired_at`` NULL resumes
        that rotation instead of starting another. ``retired_at`` is set once no live key is
        left under the old key, so the backup window counts from then. Epoch keys never move.
        """
        if batch_size < 1:
            raise InvalidKeyRequest("batch_size must be at least 1")
        new_root_key_id = self._start_rotation(session_factory, now=now)
        resumed = new_root_key_id is None
        if new_root_key_id is None:
            with session_factory() as session:
                new_root_key_id = self.ensure_active_root_key(session, now=now)
                session.commit()
        rewrapped = 0
        retired: list[str] = []
        for _ in range(_ROTATION_PASSES):
            rewrapped += self._rewrap_retired(
                session_factory, new_root_key_id, now=now, batch_size=batch_size
            )
            with session_factory() as session:
                finished, unfinished = _finish_retirement(session, now=now)
                session.commit()
            retired.extend(finished)
            if not unfinished:
                break
        return RotationReport(
            new_root_key_id=new_root_key_id,
            retired_root_key_ids=tuple(retired),
            rewrapped=rewrapped,
            resumed=resumed,
        )

    def _start_rotation(
        self, session_factory: Callable[[], Session], *, now: datetime
    ) -> str | None:
        """Record a new active root key and retire the current one; None if one is under way."""
        with session_factory() as session:
            if _retiring_root_keys(session):
                return None
            new_id = self.provider.create_root_key(description=ACTIVE_ROOT_KEY_DESCRIPTION)
            current = _active_root_key(session)
            try:
                if current is not None:
                    current.state = RootKeyState.RETIRED
                    current.retired_at = None  # set when its last key has moved
                    session.flush()  # before the insert: one live active key at a time
                session.add(
                    RootKeyRecord(
                        id=new_id,
                        purpose=RootKeyPurpose.ACTIVE,
                        state=RootKeyState.ACTIVE,
                        created_at=now,
                    )
                )
                session.commit()
            except IntegrityError:
                # Another run started a rotation first: ours never wrapped anything.
                session.rollback()
                self.provider.destroy_root_key(new_id)
                return None
            return new_id

    def _rewrap_retired(
        self,
        session_factory: Callable[[], Session],
        new_root_key_id: str,
        *,
        now: datetime,
        batch_size: int,
    ) -> int:
        """Move live keys from retired active-purpose root keys to the new one, batch by batch."""
        moved_total = 0
        while True:
            with session_factory() as session:
                batch = session.scalars(
                    sa.select(KeyRecord)
                    .where(
                        col(KeyRecord.root_key_id).in_(_retired_active_root_key_ids()),
                        col(KeyRecord.destroyed_at).is_(None),
                    )
                    .order_by(col(KeyRecord.id))
                    .limit(batch_size)
                ).all()
                if not batch:
                    return moved_total
                moved = 0
                for record in batch:
                    wrapped, old_root_key_id = _wrapping(record)
                    owner = _owner(record.kind, record.id)
                    material = self.provider.unsafe_unwrap(
                        root_key_id=old_root_key_id, wrapped=wrapped, owner=owner
                    )
                    rewrapped = self.provider.wrap(
                        root_key_id=new_root_key_id, key=material, owner=owner
                    )
                    if _store_rewrapped(
                        session,
                        record.id,
                        root_key_id=new_root_key_id,
                        wrapped=rewrapped,
                        now=now,
                        expected_root_key_id=old_root_key_id,
                    ):
                        moved += 1
                session.commit()
            moved_total += moved
            if moved == 0:
                return moved_total  # all changed under us; the finishing pass looks again

    def _record_new_root_key(
        self,
        session: Session,
        record: RootKeyRecord,
        find_winner: Callable[[], RootKeyRecord | None],
    ) -> RootKeyRecord:
        """Insert a root key row; if a concurrent caller recorded one first, use theirs."""
        session.flush()  # the caller's pending rows must not pass for our conflict below
        try:
            with session.begin_nested():
                session.add(record)
        except IntegrityError:
            winner = find_winner()
            self.provider.destroy_root_key(record.id)  # ours never wrapped anything
            if winner is None:
                raise
            return winner
        return record

    def _evict(self, *key_ids: uuid.UUID) -> None:
        with self._cache_lock:
            for key_id in key_ids:
                self._cache.pop(key_id, None)

    # -- batches and scope keys (QA extracts) ---------------------------------------------------

    def unsafe_key_materials(
        self, session: Session, key_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, bytes]:
        """The plaintext keys of many live keys, read with one query for the whole batch.

        Keys that are unknown or destroyed (or whose root key was destroyed) are left out of
        the answer, so a bulk reader skips what was shredded meanwhile. Raises
        KmsUnavailable, KeyUnwrapFailed.
        """
        wanted = set(key_ids)
        if not wanted:
            return {}
        # Core execution (the connection, not the ORM session): plain rows, no ORM loading.
        rows = session.connection().execute(
            sa.select(
                col(KeyRecord.id),
                col(KeyRecord.kind),
                col(KeyRecord.root_key_id),
                col(KeyRecord.wrapped),
            ).where(col(KeyRecord.id).in_(wanted), live_key_condition(KeyRecord))
        )
        # The condition took live rows only: root key and wrapped key are both set.
        records = [
            (key_id, kind, cast("str", root), cast("bytes", wrapped))
            for key_id, kind, root, wrapped in rows
        ]
        stored = [WrappedKey(*record) for record in records]
        return dict(
            zip((record[0] for record in records), self.unsafe_unwrap_keys(stored), strict=True)
        )

    def unsafe_unwrap_keys(self, stored: Sequence[WrappedKey]) -> list[bytes]:
        """The plaintext of each stored key, in order, with one provider call per root key.

        For bulk readers that read the wrapped keys in their own query (``live_key_condition``).
        Kept out of the cache: a bulk read of many keys, each used once, would only evict the
        keys that requests keep using. Raises KmsUnavailable, KeyUnwrapFailed.
        """
        by_root_key: defaultdict[str, list[int]] = defaultdict(list)
        for index, key in enumerate(stored):
            by_root_key[key.root_key_id].append(index)
        opened: list[bytes] = [b""] * len(stored)
        for root_key_id, indexes in by_root_key.items():
            materials = self.provider.unsafe_unwrap_many(
                root_key_id=root_key_id,
                items=[
                    (stored[i].wrapped, _owner(stored[i].kind, stored[i].key_id)) for i in indexes
                ],
            )
            for index, material in zip(indexes, materials, strict=True):
                opened[index] = material
        return opened

    def create_scope_key(self, session: Session, *, now: datetime) -> uuid.UUID:
        """A new pseudonym secret (kind ``scope``): one per named scope or per QA extract."""
        return self.create_key(session, kind=KeyKind.SCOPE, now=now)

    # -- rotation schedule (retention) --------------------------------------------------------

    def rotation_due(self, session: Session, *, created_before: datetime) -> bool:
        """Whether ``rotate`` has work: the active root key was created before
        ``created_before``, or a key wrapped under it has been destroyed (an erasure, a shred,
        an expired export), or an earlier rotation stopped before it had moved every key.

        A destroyed key's row is a tombstone, but a database copy taken before holds it still
        wrapped under the active root key: only rotating, then destroying the retired root key
        once the backup window has passed, takes that copy's key away too.
        """
        retiring = sa.exists().where(
            col(RootKeyRecord.purpose) == RootKeyPurpose.ACTIVE,
            col(RootKeyRecord.state) == RootKeyState.RETIRED,
            col(RootKeyRecord.retired_at).is_(None),
        )
        active_due = sa.exists().where(
            col(RootKeyRecord.purpose) == RootKeyPurpose.ACTIVE,
            col(RootKeyRecord.state) == RootKeyState.ACTIVE,
            sa.or_(col(RootKeyRecord.created_at) < created_before, _destroyed_under_active()),
        )
        # One query: the daily run asks it whatever the size of the key table.
        return bool(session.scalar(sa.select(sa.or_(retiring, active_due))))


# -- queries and checks ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A live key as stored: what ``KeyStore.unsafe_unwrap_keys`` opens."""

    key_id: uuid.UUID | str  # or the id's canonical text, as a bulk reader may hold it
    kind: KeyKind
    root_key_id: str
    wrapped: bytes


def live_key_condition(key: Any) -> sa.ColumnElement[bool]:
    """SQL: ``key`` (``KeyRecord`` or an alias of it) is live: not destroyed, and neither is its
    root key. For bulk readers that join the wrapped keys into their own query."""
    destroyed_root_keys = sa.select(col(RootKeyRecord.id)).where(
        col(RootKeyRecord.state) == RootKeyState.DESTROYED
    )
    return sa.and_(
        col(key.destroyed_at).is_(None),
        col(key.wrapped).is_not(None),
        col(key.root_key_id).not_in(destroyed_root_keys),
    )


def _active_root_key(session: Session) -> RootKeyRecord | None:
    return session.scalars(
        sa.select(RootKeyRecord).where(
            col(RootKeyRecord.purpose) == RootKeyPurpose.ACTIVE,
            col(RootKeyRecord.state) == RootKeyState.ACTIVE,
        )
    ).first()


def _epoch_root_key(session: Session, epoch: str) -> RootKeyRecord | None:
    return session.scalars(
        sa.select(RootKeyRecord).where(col(RootKeyRecord.epoch) == epoch)
    ).first()


def _retiring_root_keys(session: Session) -> list[RootKeyRecord]:
    """Retired active-purpose root keys that a rotation has not finished moving keys off."""
    return list(
        session.scalars(
            sa.select(RootKeyRecord).where(
                col(RootKeyRecord.purpose) == RootKeyPurpose.ACTIVE,
                col(RootKeyRecord.state) == RootKeyState.RETIRED,
                col(RootKeyRecord.retired_at).is_(None),
            )
        )
    )


def _retired_active_root_key_ids() -> sa.Select[str]:
    return sa.select(col(RootKeyRecord.id)).where(
        col(RootKeyRecord.purpose) == RootKeyPurpose.ACTIVE,
        col(RootKeyRecord.state) == RootKeyState.RETIRED,
    )


def _destroyed_under_active() -> sa.Exists:
    """A key destroyed while wrapped under the active root key (correlated to that key).

    A tombstone no longer names its root key, so the times tell: destroyed since the active
    root key was created, and wrapped (created or last re-wrapped) since then too, so under
    it, unless an explicit root key was chosen (a case moved to its retention epoch, whose
    own root key is destroyed with its month): then this answers yes once too often, never no
    too often. Reads the index on ``destroyed_at``: only keys destroyed since the last
    rotation are looked at.
    """
    since = col(RootKeyRecord.created_at)
    return sa.exists().where(
        col(KeyRecord.destroyed_at) >= since,
        sa.or_(col(KeyRecord.created_at) >= since, col(KeyRecord.rewrapped_at) >= since),
    )


def _used_by_live_key() -> sa.Exists:
    return sa.exists().where(
        col(KeyRecord.root_key_id) == col(RootKeyRecord.id),
        col(KeyRecord.destroyed_at).is_(None),
    )


def _finish_retirement(session: Session, *, now: datetime) -> tuple[list[str], bool]:
    """Set ``retired_at`` on retiring keys no live key uses; say whether any are left."""
    finished: list[str] = []
    retiring = _retiring_root_keys(session)
    for root in retiring:
        in_use = session.scalar(
            sa.select(
                sa.exists().where(
                    col(KeyRecord.root_key_id) == root.id, col(KeyRecord.destroyed_at).is_(None)
                )
            )
        )
        if not in_use:
            root.retired_at = now
            finished.append(root.id)
    session.flush()
    return finished, len(finished) < len(retiring)


def _store_rewrapped(
    session: Session,
    key_id: uuid.UUID,
    *,
    root_key_id: str,
    wrapped: bytes,
    now: datetime,
    expected_root_key_id: str | None = None,
) -> bool:
    """Compare-and-swap the wrapping of a live key; False if it was destroyed (or moved)."""
    conditions = [col(KeyRecord.id) == key_id, col(KeyRecord.destroyed_at).is_(None)]
    if expected_root_key_id is not None:
        conditions.append(col(KeyRecord.root_key_id) == expected_root_key_id)
    result = cast(
        "CursorResult[Any]",
        session.execute(
            sa.update(KeyRecord)
            .where(*conditions)
            .values(root_key_id=root_key_id, wrapped=wrapped, rewrapped_at=now)
            # Update in the session only the rows the database updated, not stale copies.
            .execution_options(synchronize_session="fetch")
        ),
    )
    return bool(result.rowcount == 1)


def _live_record(session: Session, key_id: uuid.UUID) -> KeyRecord:
    record = _fresh_record(session, key_id)
    if record is None:
        raise KeyNotFound("no such key")
    if record.destroyed_at is not None or record.wrapped is None:
        raise KeyDestroyed("the key was destroyed")
    return record


def _fresh_record(session: Session, key_id: uuid.UUID) -> KeyRecord | None:
    # Read from the database even when the session holds the row already: another process
    # may have destroyed the key since, and a stale copy must not unwrap it.
    return session.get(KeyRecord, key_id, populate_existing=True)


def _wrapping(record: KeyRecord) -> tuple[bytes, str]:
    if record.wrapped is None or record.root_key_id is None:
        raise KeyDestroyed("the key was destroyed")
    return record.wrapped, record.root_key_id


def _require_usable_root_key(session: Session, root_key_id: str) -> None:
    root = session.get(RootKeyRecord, root_key_id)
    if root is None:
        raise KeyNotFound("no such root key")
    if root.state == RootKeyState.DESTROYED:
        raise KeyDestroyed("the root key was destroyed")
    if root.state == RootKeyState.RETIRED:
        raise InvalidKeyRequest("a retired root key takes no new keys")


def _require_kind(kind: KeyKind | str) -> KeyKind:
    try:
        return KeyKind(kind)
    except ValueError:
        raise InvalidKeyRequest("unknown key kind") from None


def _require_epoch(epoch: str) -> None:
    if not _EPOCH.fullmatch(epoch):
        raise InvalidKeyRequest("a retention epoch looks like YYYY-MM")


def _require_reason(reason: str) -> None:
    if not _REASON.fullmatch(reason):
        raise InvalidKeyRequest("a destroy reason is a short lower-case code like 'retention'")


def _end_of_month(epoch: str, now: datetime) -> datetime:
    """The first instant after the epoch's month, in ``now``'s time zone."""
    year, month = int(epoch[:4]), int(epoch[5:7])
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=now.tzinfo)


def _owner(kind: KeyKind | str, key_id: uuid.UUID | str) -> str:
    # The isinstance check spares bulk unwraps an enum lookup per key.
    value = kind.value if isinstance(kind, KeyKind) else KeyKind(kind).value
    return f"{value}:{key_id}"
