"""No transaction is open while argon2 runs (250 ms of both cores at the product's cost).

On SQLite every transaction takes the write lock (BEGIN IMMEDIATE), so a sign-in or a forward
that hashed inside its transaction made every other request wait behind its argon2 run; under
the load suite's 20 clients a request waited past busy_timeout (5 s) and was answered 503
database-unavailable. Found by tests/load; the partner download already checked its code with
no transaction open, and sign-in and forwarding now do the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session

from tests.factories import (
    LOGIN_LOOKUP_KEY,
    NOW,
    USER_PASSWORD,
    Vault,
    local_vault,
    make_transfer,
    make_transfer_setup,
    make_user,
)
from vault.accounts import passwords
from vault.accounts.models import Role, User
from vault.accounts.service import TokenLifetimes, log_in
from vault.audit.models import ActorKind
from vault.audit.service import AuditContext
from vault.errors import InvalidCredentials

CLIENT = AuditContext(ActorKind.ANONYMOUS, None, "192.0.0.0")


class WatchedHasher:
    """The test's argon2 hasher, noting for each hash or verification whether ``session`` was
    inside a transaction at that moment."""

    def __init__(self, inner: PasswordHasher, session: Session) -> None:
        self._inner = inner
        self._session = session
        self.in_transaction: list[bool] = []

    def hash(self, secret: str) -> str:
        self.in_transaction.append(self._session.in_transaction())
        return self._inner.hash(secret)

    def verify(self, password_hash: str, secret: str) -> bool:
        self.in_transaction.append(self._session.in_transaction())
        return self._inner.verify(password_hash, secret)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def watched(session: Session, monkeypatch: pytest.MonkeyPatch) -> WatchedHasher:
    hasher = WatchedHasher(passwords._hasher, session)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    return hasher


def sign_in(session: Session, login: str, password: str = USER_PASSWORD) -> None:
    log_in(
        session,
        lookup_key=LOGIN_LOOKUP_KEY,
        login=login,
        password=password,
        now=NOW,
        audit=CLIENT,
        lifetimes=TokenLifetimes(),
    )


def test_sign_in_checks_the_password_with_no_transaction_open(
    session: Session, watched: WatchedHasher
) -> None:
    make_user(session, Role.COORDINATOR, login="coordinator-a")
    watched.in_transaction.clear()  # the user's own hashing, at creation

    sign_in(session, "coordinator-a")

    assert watched.in_transaction == [False]


@pytest.mark.parametrize("login", ["coordinator-a", "nobody-of-that-name"])
def test_a_refused_sign_in_burns_its_argon2_run_with_no_transaction_open(
    session: Session, watched: WatchedHasher, login: str
) -> None:
    make_user(session, Role.COORDINATOR, login="coordinator-a")
    watched.in_transaction.clear()

    with pytest.raises(InvalidCredentials):
        sign_in(session, login, password="a wrong password")

    assert watched.in_transaction  # an unknown login may make its dummy hash first
    assert not any(watched.in_transaction)


def test_a_rehash_at_sign_in_also_happens_with_no_transaction_open(
    session: Session, watched: WatchedHasher
) -> None:
    user = make_user(session, Role.COORDINATOR, login="coordinator-a")
    older = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # not today's parameters
    user.password_hash = older.hash(USER_PASSWORD)
    session.add(user)
    session.commit()
    watched.in_transaction.clear()

    sign_in(session, "coordinator-a")

    assert watched.in_transaction == [False, False]  # the check, then the new hash
    session.rollback()
    stored = session.get(User, user.id)
    assert stored is not None
    assert not passwords.needs_rehash(stored.password_hash)


def test_forwarding_hashes_the_access_code_with_no_transaction_open(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session.expire_on_commit = False  # as the service's sessions (infra.db.session_factory)
    vault: Vault = local_vault(session, tmp_path)
    setup = make_transfer_setup(vault)
    session.commit()  # as the API: the caller's own lookups are committed before the verb runs
    watched = WatchedHasher(passwords._hasher, session)
    monkeypatch.setattr(passwords, "_hasher", watched)

    issued = make_transfer(session, setup)

    assert watched.in_transaction == [False]
    assert passwords.verify_password(issued.link.link.code_hash, issued.link.access_code)
