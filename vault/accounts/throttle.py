"""Login throttling: failed logins counted per account and per anonymised client address.

Each key (``account:<login digest>``, ``client:<address>``) counts failures in a window that
starts with its first failure. From ``slow_after`` failures on, the next attempt must wait
2, 4, 8... seconds after the last failure; at ``lock_after`` failures the key is locked for
``lock_for``. A refused attempt never reaches the password check, so waiting is the only way
on. The answer is the same whether the account exists or not: keys are digests either way.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from vault.accounts.models import LoginThrottle
from vault.clock import as_utc
from vault.errors import LoginLocked, LoginThrottled

UNKNOWN_CLIENT = "unknown"  # callers without an address share one bucket: fail closed


@dataclass(frozen=True)
class ThrottlePolicy:
    window: timedelta = timedelta(minutes=15)
    slow_after: int = 5
    lock_after: int = 10
    lock_for: timedelta = timedelta(minutes=15)


def account_key(login_digest: str) -> str:
    return f"account:{login_digest}"


def client_key(client: str | None) -> str:
    return f"client:{client or UNKNOWN_CLIENT}"


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((as_utc(moment) - now).total_seconds()))


def _is_stale(row: LoginThrottle, now: datetime, policy: ThrottlePolicy) -> bool:
    """A window that is over, or a lock that has run out: the count starts again."""
    if row.locked_until is not None:
        return now >= as_utc(row.locked_until)
    return now - as_utc(row.window_started_at) >= policy.window


def _load(session: Session, keys: Sequence[str], *, for_update: bool) -> list[LoginThrottle]:
    query = select(LoginThrottle).where(col(LoginThrottle.key).in_(keys))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(session.exec(query))


def check_attempt_allowed(
    session: Session, *, keys: Sequence[str], now: datetime, policy: ThrottlePolicy
) -> None:
    """Raise LoginLocked or LoginThrottled (with the seconds to wait) if any key says so."""
    locked: list[int] = []
    slowed: list[int] = []
    for row in _load(session, keys, for_update=False):
        if _is_stale(row, now, policy):
            continue
        if row.locked_until is not None:
            locked.append(_seconds_until(row.locked_until, now))
        elif row.failures >= policy.slow_after:
            delay = timedelta(seconds=2 ** (row.failures - policy.slow_after + 1))
            wait_until = as_utc(row.last_failure_at) + delay
            if now < wait_until:
                slowed.append(_seconds_until(wait_until, now))
    if locked:
        raise LoginLocked("too many failed logins; try again later", retry_after=max(locked))
    if slowed:
        raise LoginThrottled("too many failed logins; wait a moment", retry_after=max(slowed))


def record_failure(
    session: Session, *, keys: Sequence[str], now: datetime, policy: ThrottlePolicy
) -> bool:
    """Count one failed login on every key; True if that locked one of them. Flushes."""
    rows = {row.key: row for row in _load(session, keys, for_update=True)}
    newly_locked = False
    for key in keys:
        row = rows.get(key) or _insert(session, key, now)
        if _is_stale(row, now, policy):
            row.failures, row.window_started_at, row.locked_until = 0, now, None
        row.failures += 1
        row.last_failure_at = now
        if row.failures >= policy.lock_after and row.locked_until is None:
            row.locked_until = now + policy.lock_for
            newly_locked = True
        session.add(row)
    session.flush()
    return newly_locked


def _insert(session: Session, key: str, now: datetime) -> LoginThrottle:
    """A fresh row for ``key``; if a concurrent login inserted it first, lock and use theirs."""
    row = LoginThrottle(key=key, failures=0, window_started_at=now, last_failure_at=now)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        session.expunge(row)
        return _load(session, [key], for_update=True)[0]
    return row


def reset(session: Session, *, key: str) -> None:
    """Forget the failures of ``key`` (after a successful login). Flushes."""
    session.exec(delete(LoginThrottle).where(col(LoginThrottle.key) == key))
    session.flush()
