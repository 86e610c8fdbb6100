"""Account verbs over SQLite and PostgreSQL: users, login, tokens, throttling, registration."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlmodel import Session, col, func, select

from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from tests.factories import (
    LOGIN_LOOKUP_KEY,
    NOW,
    PATIENT_EMAIL,
    USER_PASSWORD,
    RecordingNotifier,
    identity,
    make_patient,
    make_user,
)
from vault.accounts.models import AuthToken, OneTimeToken, Role, User
from vault.accounts.service import (
    MailContext,
    TokenLifetimes,
    TokenPair,
    accept_invitation,
    confirm_email,
    create_user,
    disable_user,
    disable_user_by_login,
    invite_patient,
    list_users,
    log_in,
    logout,
    refresh_tokens,
    register_patient_account,
    user_for_access_token,
)
from vault.audit.models import ActorKind, AuditEvent
from vault.audit.service import AuditContext
from vault.errors import (
    EmailNotConfirmed,
    InvalidCredentials,
    InvalidOneTimeToken,
    LoginLocked,
    LoginTaken,
    LoginThrottled,
    NotAuthenticated,
    NotFound,
    NotificationFailed,
    WeakPassword,
)
from vault.patients.models import Patient

LIFETIMES = TokenLifetimes()
CLIENT_A = AuditContext(ActorKind.ANONYMOUS, None, "192.0.0.0")
CLIENT_B = AuditContext(ActorKind.ANONYMOUS, None, "10.1.0.0")
BASE_URL = "https://vault.example"


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(provider=LocalKeyringProvider(tmp_path / "keys" / "keyring.json"))


def events(session: Session) -> list[tuple[str, str]]:
    session.rollback()  # see what was committed, nothing else
    rows = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    return [(row.action, row.outcome) for row in rows]


def count(session: Session, table: type) -> int:
    session.rollback()
    return session.exec(select(func.count()).select_from(table)).one()


def attempt(
    session: Session,
    login: str,
    password: str = USER_PASSWORD,
    *,
    now: datetime = NOW,
    client: AuditContext = CLIENT_A,
) -> TokenPair:
    return log_in(
        session,
        lookup_key=LOGIN_LOOKUP_KEY,
        login=login,
        password=password,
        now=now,
        audit=client,
        lifetimes=LIFETIMES,
    )


def fail(session: Session, login: str, times: int, **kwargs: object) -> None:
    for _ in range(times):
        with pytest.raises(InvalidCredentials):
            attempt(session, login, "wrong password!", **kwargs)  # type: ignore[arg-type]


# --- users ---


def test_create_user_stores_only_a_digest_of_the_login(session: Session) -> None:
    user = make_user(session, Role.COORDINATOR, login="Koordinatorin@Example.org")

    assert "koordinatorin" not in user.login_digest.lower()
    assert user.password_hash.startswith("$argon2id$")
    assert events(session) == [("user.create", "ok")]
    with pytest.raises(LoginTaken):
        make_user(session, Role.ADMIN, login="  koordinatorin@example.ORG")
    assert count(session, User) == 1


def test_create_user_with_a_weak_password_stores_nothing(session: Session) -> None:
    with pytest.raises(WeakPassword):
        make_user(session, Role.ADMIN, password="short")
    assert count(session, User) == 0


def test_only_patient_users_belong_to_a_patient(session: Session, keys: KeyStore) -> None:
    patient = make_patient(session, keys)
    with pytest.raises(ValueError, match="patient"):
        make_user(session, Role.ADMIN, patient_id=patient.id)
    with pytest.raises(ValueError, match="patient"):
        make_user(session, Role.PATIENT)


def test_list_users_oldest_first(session: Session) -> None:
    later = make_user(session, Role.ADMIN)
    earlier = make_user(session, Role.ANALYST)
    earlier.created_at = NOW - timedelta(minutes=1)
    session.add(earlier)
    session.commit()

    assert [user.id for user in list_users(session, now=NOW, audit=CLIENT_A)] == [
        earlier.id,
        later.id,
    ]
    assert events(session)[-1] == ("user.list", "ok")


# --- login and tokens ---


def test_login_issues_tokens_for_the_user(session: Session) -> None:
    user = make_user(session, Role.COORDINATOR, login="c@example.org")

    pair = attempt(session, "C@example.org ")

    assert pair.expires_in == 15 * 60
    assert pair.access_token != pair.refresh_token
    assert user_for_access_token(session, token=pair.access_token, now=NOW).id == user.id
    assert pair.access_token not in repr(pair)
    assert events(session) == [("user.create", "ok"), ("auth.login", "ok")]
    stored = session.exec(select(AuthToken.digest)).all()
    assert pair.access_token not in stored
    assert pair.refresh_token not in stored


def test_access_token_expires_after_its_lifetime(session: Session) -> None:
    make_user(session, Role.ANALYST, login="a@example.org")
    token = attempt(session, "a@example.org").access_token

    user_for_access_token(session, token=token, now=NOW + timedelta(minutes=15, seconds=-1))
    with pytest.raises(NotAuthenticated):
        user_for_access_token(session, token=token, now=NOW + timedelta(minutes=15))


def test_refresh_token_is_not_an_access_token(session: Session) -> None:
    make_user(session, Role.ANALYST, login="a@example.org")
    pair = attempt(session, "a@example.org")
    with pytest.raises(NotAuthenticated):
        user_for_access_token(session, token=pair.refresh_token, now=NOW)
    with pytest.raises(NotAuthenticated):
        user_for_access_token(session, token=pair.access_token + "x", now=NOW)


@pytest.mark.parametrize("login", ["c@example.org", "nobody@example.org"])
def test_wrong_password_or_unknown_login_is_denied_and_audited(
    session: Session, login: str
) -> None:
    make_user(session, Role.COORDINATOR, login="c@example.org")

    fail(session, login, 1)

    assert events(session)[-1] == ("auth.login_failed", "denied")
    assert count(session, AuthToken) == 0


@pytest.mark.real_password_hashing  # the product's cost is what an outdated hash is upgraded to
def test_login_upgrades_an_outdated_hash(session: Session) -> None:
    user = make_user(session, Role.ADMIN, login="admin@example.org")
    user.password_hash = PasswordHasher.from_parameters(CHEAPEST).hash(USER_PASSWORD)
    session.add(user)
    session.commit()

    attempt(session, "admin@example.org")

    session.refresh(user)
    assert "m=65536,t=3,p=4" in user.password_hash
    attempt(session, "admin@example.org")  # the new hash verifies


def test_refresh_rotates_and_reuse_revokes_the_family(session: Session) -> None:
    make_user(session, Role.ADMIN, login="admin@example.org")
    first = attempt(session, "admin@example.org")
    later = NOW + timedelta(minutes=5)

    second = refresh_tokens(
        session, refresh_token=first.refresh_token, now=later, audit=CLIENT_A, lifetimes=LIFETIMES
    )
    user_for_access_token(session, token=second.access_token, now=later)

    with pytest.raises(NotAuthenticated):  # the rotated-away token again: theft signal
        refresh_tokens(
            session,
            refresh_token=first.refresh_token,
            now=later,
            audit=CLIENT_A,
            lifetimes=LIFETIMES,
        )
    for token in (first.access_token, second.access_token):
        with pytest.raises(NotAuthenticated):
            user_for_access_token(session, token=token, now=later)
    with pytest.raises(NotAuthenticated):
        refresh_tokens(
            session,
            refresh_token=second.refresh_token,
            now=later,
            audit=CLIENT_A,
            lifetimes=LIFETIMES,
        )
    assert ("auth.refresh", "denied") in events(session)


def test_refresh_never_outlives_the_login(session: Session) -> None:
    make_user(session, Role.ADMIN, login="admin@example.org")
    pair = attempt(session, "admin@example.org")
    at = NOW + timedelta(hours=11, minutes=55)

    pair = refresh_tokens(
        session, refresh_token=pair.refresh_token, now=at, audit=CLIENT_A, lifetimes=LIFETIMES
    )
    assert pair.expires_in == 5 * 60  # capped by the family's end, not 15 minutes
    with pytest.raises(NotAuthenticated):
        refresh_tokens(
            session,
            refresh_token=pair.refresh_token,
            now=NOW + timedelta(hours=12),
            audit=CLIENT_A,
            lifetimes=LIFETIMES,
        )


def test_logout_revokes_its_family_only(session: Session) -> None:
    make_user(session, Role.ADMIN, login="admin@example.org")
    laptop = attempt(session, "admin@example.org")
    phone = attempt(session, "admin@example.org")

    logout(session, access_token=laptop.access_token, now=NOW, audit=CLIENT_A)

    with pytest.raises(NotAuthenticated):
        user_for_access_token(session, token=laptop.access_token, now=NOW)
    with pytest.raises(NotAuthenticated):
        refresh_tokens(
            session,
            refresh_token=laptop.refresh_token,
            now=NOW,
            audit=CLIENT_A,
            lifetimes=LIFETIMES,
        )
    user_for_access_token(session, token=phone.access_token, now=NOW)
    assert ("auth.logout", "ok") in events(session)


def test_disabled_user_is_locked_out_at_once(session: Session) -> None:
    user = make_user(session, Role.COORDINATOR, login="c@example.org")
    pair = attempt(session, "c@example.org")

    disable_user(session, user_id=user.id, now=NOW, audit=AuditContext.SYSTEM)

    with pytest.raises(NotAuthenticated):
        user_for_access_token(session, token=pair.access_token, now=NOW)
    with pytest.raises(NotAuthenticated):
        refresh_tokens(
            session, refresh_token=pair.refresh_token, now=NOW, audit=CLIENT_A, lifetimes=LIFETIMES
        )
    fail(session, "c@example.org", 1)  # the right password no longer works either
    with pytest.raises(InvalidCredentials):
        attempt(session, "c@example.org")
    assert ("user.disable", "ok") in events(session)


def test_disable_by_login_and_unknown_user(session: Session) -> None:
    user = make_user(session, Role.ANALYST, login="a@example.org")
    disable_user_by_login(
        session, lookup_key=LOGIN_LOOKUP_KEY, login="A@example.org", now=NOW, audit=CLIENT_A
    )
    session.refresh(user)
    assert user.disabled_at is not None
    with pytest.raises(NotFound):
        disable_user(session, user_id=uuid.uuid4(), now=NOW, audit=CLIENT_A)


# --- throttling ---


@pytest.mark.parametrize("login", ["c@example.org", "nobody@example.org"])
def test_failures_slow_then_lock_an_account(session: Session, login: str) -> None:
    """Known and unknown logins get the very same answers (no account oracle)."""
    make_user(session, Role.COORDINATOR, login="c@example.org")
    now = NOW
    fail(session, login, 5, now=now)

    # From the fifth failure on, each further try must wait 2, 4, 8, 16, 32 seconds.
    for failures, wait in ((5, 2), (6, 4), (7, 8), (8, 16), (9, 32)):
        with pytest.raises(LoginThrottled) as refused:
            attempt(session, login, now=now + timedelta(seconds=wait - 1))
        assert type(refused.value) is LoginThrottled
        assert refused.value.retry_after == 1, failures
        now += timedelta(seconds=wait)
        fail(session, login, 1, now=now)

    with pytest.raises(LoginLocked) as locked:
        attempt(session, login, now=now + timedelta(minutes=14))
    assert locked.value.retry_after == 60
    assert ("auth.locked", "denied") in events(session)
    assert ("auth.login_failed", "refused") in events(session)

    if login == "c@example.org":  # once the lock has run out, the right password works
        attempt(session, login, now=now + timedelta(minutes=15), client=CLIENT_B)


def test_right_password_is_refused_while_slowed(session: Session) -> None:
    make_user(session, Role.COORDINATOR, login="c@example.org")
    fail(session, "c@example.org", 5, client=CLIENT_B)
    with pytest.raises(LoginThrottled):
        attempt(session, "c@example.org", client=CLIENT_A)
    assert count(session, AuthToken) == 0


def test_failures_are_counted_per_client_address(session: Session) -> None:
    make_user(session, Role.COORDINATOR, login="c@example.org")
    for index in range(5):  # five different accounts, one client
        fail(session, f"guess-{index}@example.org", 1, client=CLIENT_A)

    with pytest.raises(LoginThrottled):
        attempt(session, "c@example.org", client=CLIENT_A)
    attempt(session, "c@example.org", client=CLIENT_B)  # another client is not slowed


def client(number: int) -> AuditContext:
    return AuditContext(ActorKind.ANONYMOUS, None, f"10.{number}.0.0")


def test_success_resets_the_account_count(session: Session) -> None:
    make_user(session, Role.COORDINATOR, login="c@example.org")
    fail(session, "c@example.org", 4, client=client(1))
    attempt(session, "c@example.org", client=client(2))
    fail(session, "c@example.org", 4, client=client(3))

    # Eight failures in all, but only four since the success: not slowed.
    with pytest.raises(InvalidCredentials):
        attempt(session, "c@example.org", "wrong password!", client=client(4))


def test_a_new_window_starts_after_fifteen_minutes(session: Session) -> None:
    fail(session, "nobody@example.org", 4, client=client(1))
    later = NOW + timedelta(minutes=15)
    fail(session, "nobody@example.org", 4, now=later, client=client(2))

    with pytest.raises(InvalidCredentials):  # at most four failures in each window
        attempt(session, "nobody@example.org", now=later, client=client(3))
    with pytest.raises(LoginThrottled):  # the fifth in this window slows the next try
        attempt(session, "nobody@example.org", now=later, client=client(4))


# --- registration and invitations ---


def register(
    session: Session, keys: KeyStore, notifier: RecordingNotifier, password: str = USER_PASSWORD
) -> None:
    register_patient_account(
        session,
        keys=keys,
        lookup_key=LOGIN_LOOKUP_KEY,
        mail=MailContext(notifier=notifier, base_url=BASE_URL),
        identity=identity(),
        password=password,
        now=NOW,
        audit=CLIENT_A,
    )


def code_in(notifier: RecordingNotifier) -> str:
    return notifier.messages[-1].body.split("\n\n")[2].strip()


def test_registration_needs_the_mailed_confirmation(session: Session, keys: KeyStore) -> None:
    notifier = RecordingNotifier()
    register(session, keys, notifier)

    (message,) = notifier.messages
    assert message.to == PATIENT_EMAIL
    assert "Confirm" in message.subject
    with pytest.raises(EmailNotConfirmed):
        attempt(session, PATIENT_EMAIL)

    user = confirm_email(session, token=code_in(notifier), now=NOW, audit=CLIENT_A)

    assert user.role is Role.PATIENT
    assert user.patient_id is not None
    attempt(session, PATIENT_EMAIL)
    with pytest.raises(InvalidOneTimeToken):  # single use
        confirm_email(session, token=code_in(notifier), now=NOW, audit=CLIENT_A)
    assert ("patient.register", "ok") in events(session)


def test_confirmation_code_expires_after_48_hours(session: Session, keys: KeyStore) -> None:
    notifier = RecordingNotifier()
    register(session, keys, notifier)
    with pytest.raises(InvalidOneTimeToken):
        confirm_email(
            session, token=code_in(notifier), now=NOW + timedelta(hours=48), audit=CLIENT_A
        )


def test_registering_a_known_address_mails_instead_of_telling(
    session: Session, keys: KeyStore
) -> None:
    notifier = RecordingNotifier()
    register(session, keys, notifier)
    register(session, keys, notifier)  # no error: the caller learns nothing

    assert count(session, User) == 1
    assert count(session, Patient) == 1
    assert "You already have an account" in notifier.messages[-1].body
    assert events(session)[-1] == ("patient.register", "refused")


def test_registration_stores_nothing_when_the_mail_fails(session: Session, keys: KeyStore) -> None:
    with pytest.raises(NotificationFailed):
        register(session, keys, RecordingNotifier(fail=True))
    assert count(session, User) == count(session, Patient) == count(session, OneTimeToken) == 0


def test_registration_refuses_a_weak_password(session: Session, keys: KeyStore) -> None:
    notifier = RecordingNotifier()
    with pytest.raises(WeakPassword):
        register(session, keys, notifier, password="short")
    assert notifier.messages == []
    assert count(session, User) == count(session, Patient) == 0


def invite(session: Session, keys: KeyStore, notifier: RecordingNotifier) -> Patient:
    return invite_patient(
        session,
        keys=keys,
        lookup_key=LOGIN_LOOKUP_KEY,
        mail=MailContext(notifier=notifier, base_url=BASE_URL),
        identity=identity(),
        now=NOW,
        audit=CLIENT_A,
    )


def test_invited_patient_sets_a_password_once(session: Session, keys: KeyStore) -> None:
    notifier = RecordingNotifier()
    patient = invite(session, keys, notifier)
    code = code_in(notifier)
    fail(session, PATIENT_EMAIL, 1)  # no password yet: nothing logs in

    with pytest.raises(WeakPassword):
        accept_invitation(session, token=code, password="short", now=NOW, audit=CLIENT_A)
    user = accept_invitation(session, token=code, password=USER_PASSWORD, now=NOW, audit=CLIENT_A)

    assert user.patient_id == patient.id
    attempt(session, PATIENT_EMAIL, client=CLIENT_B)
    with pytest.raises(InvalidOneTimeToken):
        accept_invitation(
            session, token=code, password=USER_PASSWORD + "2", now=NOW, audit=CLIENT_A
        )
    with pytest.raises(InvalidOneTimeToken):  # a confirmation code is not an invitation
        confirm_email(session, token=code, now=NOW, audit=CLIENT_A)
    assert ("patient.invite", "ok") in events(session)


def test_inviting_a_known_address_is_refused(session: Session, keys: KeyStore) -> None:
    notifier = RecordingNotifier()
    invite(session, keys, notifier)
    with pytest.raises(LoginTaken):
        invite(session, keys, notifier)
    assert count(session, Patient) == count(session, User) == 1
    assert len(notifier.messages) == 1


def test_create_user_for_a_patient_counts_as_confirmed(session: Session, keys: KeyStore) -> None:
    patient = make_patient(session, keys)
    create_user(
        session,
        lookup_key=LOGIN_LOOKUP_KEY,
        login="p@example.org",
        role=Role.PATIENT,
        password=USER_PASSWORD,
        patient_id=patient.id,
        now=NOW,
    )
    attempt(session, "p@example.org")
