"""Account verbs: create and disable users, log in, refresh, log out, register and invite patients.

Bearer tokens are opaque random strings known to the database only by their SHA-256 digest.
A login starts a token family; each refresh rotates the refresh token inside the family, and
presenting a refresh token that was already rotated away (a sign it was stolen) revokes the
whole family. Refreshing never extends a family beyond the refresh lifetime of its login.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select, update

from keys.store import KeyStore
from vault.accounts import throttle
from vault.accounts.models import (
    AuthToken,
    OneTimePurpose,
    OneTimeToken,
    Role,
    TokenKind,
    User,
)
from vault.accounts.passwords import (
    UNUSABLE_PASSWORD,
    burn_verification,
    check_password_policy,
    hash_password,
    login_digest,
    needs_rehash,
    verify_password,
)
from vault.accounts.throttle import ThrottlePolicy
from vault.accounts.tokens import new_token, token_digest
from vault.audit.models import AuditAction
from vault.audit.service import AuditContext, append_event
from vault.clock import as_utc
from vault.errors import (
    EmailNotConfirmed,
    InvalidCredentials,
    InvalidLogin,
    InvalidOneTimeToken,
    LoginTaken,
    LoginThrottled,
    NotAuthenticated,
    NotFound,
)
from vault.notifications.interfaces import Notification, Notifier
from vault.patients.models import Patient
from vault.patients.service import PatientIdentity, register_patient

ONE_TIME_TOKEN_LIFETIME = timedelta(hours=48)


@dataclass(frozen=True)
class TokenLifetimes:
    access: timedelta = timedelta(minutes=15)
    refresh: timedelta = timedelta(hours=12)


@dataclass(frozen=True, repr=False)
class TokenPair:
    """What a login or refresh hands out. Its repr is redacted: these are credentials."""

    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives

    def __repr__(self) -> str:
        return "TokenPair(<redacted>)"


@dataclass(frozen=True)
class MailContext:
    """What a service needs to send mail: the notifier, and the address the service is at."""

    notifier: Notifier
    base_url: str


# --- users ---


def create_user(
    session: Session,
    *,
    lookup_key: bytes,
    login: str,
    role: Role,
    password: str,
    now: datetime,
    patient_id: uuid.UUID | None = None,
    audit: AuditContext = AuditContext.SYSTEM,
) -> User:
    """Create a user with a password (an admin, or the operator's CLI: the system). Raises
    LoginTaken for a login in use. The creator vouches for the address, so a patient created
    this way counts as confirmed."""
    if (role is Role.PATIENT) != (patient_id is not None):
        raise ValueError("patient users, and only they, belong to a patient record")
    user = _new_user(
        session,
        lookup_key=lookup_key,
        login=login,
        role=role,
        password_hash=hash_password(password),
        patient_id=patient_id,
        now=now,
    )
    user.email_confirmed_at = now if role is Role.PATIENT else None
    append_event(session, context=audit, action=AuditAction.USER_CREATE, now=now, user_id=user.id)
    session.commit()
    return user


def _new_user(
    session: Session,
    *,
    lookup_key: bytes,
    login: str,
    role: Role,
    password_hash: str,
    patient_id: uuid.UUID | None,
    now: datetime,
) -> User:
    digest = login_digest(lookup_key, login)
    if _user_by_digest(session, digest) is not None:
        raise LoginTaken("this login is already in use")
    user = User(
        role=role,
        login_digest=digest,
        password_hash=password_hash,
        patient_id=patient_id,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def _user_by_digest(session: Session, digest: str) -> User | None:
    return session.exec(select(User).where(User.login_digest == digest)).first()


def list_users(session: Session, *, now: datetime, audit: AuditContext) -> Sequence[User]:
    """Every user, oldest first (callers show ids and roles, never login digests)."""
    users = session.exec(select(User).order_by(col(User.created_at), col(User.id))).all()
    append_event(session, context=audit, action=AuditAction.USER_LIST, now=now)
    session.commit()
    return users


def disable_user(
    session: Session, *, user_id: uuid.UUID, now: datetime, audit: AuditContext
) -> User:
    """Disable a user at once: their tokens stop working. Disabling twice keeps the first date."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    if user.disabled_at is None:
        user.disabled_at = now
        session.add(user)
    _revoke_where(session, col(AuthToken.user_id) == user.id, now=now)
    append_event(session, context=audit, action=AuditAction.USER_DISABLE, now=now, user_id=user.id)
    session.commit()
    return user


def disable_user_by_login(
    session: Session, *, lookup_key: bytes, login: str, now: datetime, audit: AuditContext
) -> User:
    """``disable_user`` for an operator who knows the login (the CLI)."""
    user = _user_by_digest(session, login_digest(lookup_key, login))
    if user is None:
        raise NotFound("no such user")
    return disable_user(session, user_id=user.id, now=now, audit=audit)


def close_patient_accounts(
    session: Session, *, patient_id: uuid.UUID, now: datetime, audit: AuditContext, purpose: str
) -> list[uuid.UUID]:
    """Close for good the accounts of a patient whose data is being erased (Art. 17): each
    is disabled, its tokens revoked, its password made unusable, its failed-login count
    dropped, and its login digest replaced by a random value, so the address no longer leads
    to it and may register anew. Flushes with a ``user.disable`` event each (``purpose``
    names the right); the caller commits. Returns the user ids."""
    users = session.exec(select(User).where(User.patient_id == patient_id)).all()
    for user in users:
        user.disabled_at = user.disabled_at or now
        user.password_hash = UNUSABLE_PASSWORD
        throttle.reset(session, key=throttle.account_key(user.login_digest))
        # Random, and never an HMAC of any login: no address finds this account any more.
        user.login_digest = new_token()[1]
        session.add(user)
        _revoke_where(session, col(AuthToken.user_id) == user.id, now=now)
        append_event(
            session,
            context=audit,
            action=AuditAction.USER_DISABLE,
            now=now,
            patient_id=patient_id,
            user_id=user.id,
            purpose=purpose,
        )
    session.flush()
    return [user.id for user in users]


# --- tokens ---


def user_for_access_token(session: Session, *, token: str, now: datetime) -> User:
    """The user a live access token belongs to; NotAuthenticated for anything else."""
    row = session.exec(
        select(AuthToken).where(
            AuthToken.digest == token_digest(token), AuthToken.kind == TokenKind.ACCESS
        )
    ).first()
    if row is None or row.revoked_at is not None or now >= as_utc(row.expires_at):
        raise NotAuthenticated("the token is invalid or has expired")
    return _active_user(session, row.user_id)


def _active_user(session: Session, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None or user.disabled_at is not None:
        raise NotAuthenticated("the token is invalid or has expired")
    return user


def _issue_pair(
    session: Session,
    *,
    user: User,
    family_id: uuid.UUID,
    refresh_expires_at: datetime,
    now: datetime,
    lifetimes: TokenLifetimes,
) -> TokenPair:
    access, access_digest = new_token()
    refresh, refresh_digest = new_token()
    access_expires_at = min(now + lifetimes.access, refresh_expires_at)
    for digest, kind, expires_at in (
        (access_digest, TokenKind.ACCESS, access_expires_at),
        (refresh_digest, TokenKind.REFRESH, refresh_expires_at),
    ):
        session.add(
            AuthToken(
                digest=digest,
                user_id=user.id,
                kind=kind,
                family_id=family_id,
                expires_at=expires_at,
                created_at=now,
            )
        )
    session.flush()
    expires_in = int((access_expires_at - now).total_seconds())
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=expires_in)


def _revoke_where(session: Session, condition: object, *, now: datetime) -> None:
    session.exec(
        update(AuthToken)
        .where(condition, col(AuthToken.revoked_at).is_(None))  # type: ignore[arg-type]
        .values(revoked_at=now)
    )


def refresh_tokens(
    session: Session,
    *,
    refresh_token: str,
    now: datetime,
    audit: AuditContext,
    lifetimes: TokenLifetimes,
) -> TokenPair:
    """Swap a refresh token for a new pair. A reused (already rotated) one revokes its family."""
    row = session.exec(
        select(AuthToken).where(
            AuthToken.digest == token_digest(refresh_token), AuthToken.kind == TokenKind.REFRESH
        )
    ).first()
    if row is None or now >= as_utc(row.expires_at):
        raise NotAuthenticated("the refresh token is invalid or has expired")
    # Revoke it only if nobody else did: two concurrent refreshes cannot both rotate it.
    rotated = session.exec(
        update(AuthToken)
        .where(col(AuthToken.id) == row.id, col(AuthToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    if rotated.rowcount != 1:
        _revoke_where(session, col(AuthToken.family_id) == row.family_id, now=now)
        append_event(
            session,
            context=audit,
            action=AuditAction.AUTH_REFRESH,
            now=now,
            outcome="denied",
            user_id=row.user_id,
        )
        session.commit()
        raise NotAuthenticated("the refresh token is invalid or has expired")
    user = _active_user(session, row.user_id)
    pair = _issue_pair(
        session,
        user=user,
        family_id=row.family_id,
        refresh_expires_at=as_utc(row.expires_at),
        now=now,
        lifetimes=lifetimes,
    )
    append_event(session, context=audit, action=AuditAction.AUTH_REFRESH, now=now, user_id=user.id)
    session.commit()
    return pair


def logout(session: Session, *, access_token: str, now: datetime, audit: AuditContext) -> None:
    """Revoke the token family of a live access token (every token of that login)."""
    user = user_for_access_token(session, token=access_token, now=now)
    family_id = session.exec(
        select(AuthToken.family_id).where(AuthToken.digest == token_digest(access_token))
    ).one()
    _revoke_where(session, col(AuthToken.family_id) == family_id, now=now)
    append_event(session, context=audit, action=AuditAction.AUTH_LOGOUT, now=now, user_id=user.id)
    session.commit()


# --- login ---


def log_in(
    session: Session,
    *,
    lookup_key: bytes,
    login: str,
    password: str,
    now: datetime,
    audit: AuditContext,
    lifetimes: TokenLifetimes,
    policy: ThrottlePolicy | None = None,
) -> TokenPair:
    """Check a login and password and start a token family.

    Failures are counted per account and per client (``audit.client``) and answered the same
    way whether the account exists or not; the denied event is committed before raising.
    """
    policy = policy or ThrottlePolicy()
    try:
        digest = login_digest(lookup_key, login)
    except InvalidLogin:
        digest = "invalid"  # an impossible digest: counted and answered like any unknown login
    keys = [throttle.account_key(digest), throttle.client_key(audit.client)]
    try:
        throttle.check_attempt_allowed(session, keys=keys, now=now, policy=policy)
    except LoginThrottled:
        _deny(session, audit=audit, now=now, outcome="refused")
        raise
    user = _user_by_digest(session, digest)
    password_hash = user.password_hash if user is not None else ""
    session.commit()  # no transaction (on SQLite: no write lock) held during the argon2 work
    if user is None:
        burn_verification(password)
    verified = user is not None and verify_password(password_hash, password)
    rehashed = hash_password(password) if verified and needs_rehash(password_hash) else None
    if user is None or not verified or user.disabled_at:
        user_id = user.id if user is not None else None
        locked = throttle.record_failure(session, keys=keys, now=now, policy=policy)
        if locked:
            append_event(
                session,
                context=audit,
                action=AuditAction.AUTH_LOCKED,
                now=now,
                outcome="denied",
                user_id=user_id,
            )
        _deny(session, audit=audit, now=now, outcome="denied", user_id=user_id)
        raise InvalidCredentials("wrong login or password")
    if user.role is Role.PATIENT and user.email_confirmed_at is None:
        _deny(session, audit=audit, now=now, outcome="refused", user_id=user.id)
        raise EmailNotConfirmed("confirm your e-mail address first (see the mail we sent)")
    throttle.reset(session, key=throttle.account_key(digest))
    if rehashed is not None:  # unless the password changed since it was checked
        session.execute(
            update(User)
            .where(col(User.id) == user.id, col(User.password_hash) == password_hash)
            .values(password_hash=rehashed)
        )
    refresh_expires_at = now + lifetimes.refresh
    pair = _issue_pair(
        session,
        user=user,
        family_id=uuid.uuid4(),
        refresh_expires_at=refresh_expires_at,
        now=now,
        lifetimes=lifetimes,
    )
    append_event(session, context=audit, action=AuditAction.AUTH_LOGIN, now=now, user_id=user.id)
    session.commit()
    return pair


def _deny(
    session: Session,
    *,
    audit: AuditContext,
    now: datetime,
    outcome: str,
    user_id: uuid.UUID | None = None,
) -> None:
    append_event(
        session,
        context=audit,
        action=AuditAction.AUTH_LOGIN_FAILED,
        now=now,
        outcome=outcome,
        user_id=user_id,
    )
    session.commit()


# --- one-time tokens, registration, invitations ---


def _issue_one_time_token(
    session: Session, *, user: User, purpose: OneTimePurpose, now: datetime
) -> str:
    token, digest = new_token()
    session.add(
        OneTimeToken(
            digest=digest,
            user_id=user.id,
            purpose=purpose,
            expires_at=now + ONE_TIME_TOKEN_LIFETIME,
            created_at=now,
        )
    )
    session.flush()
    return token


def _consume_one_time_token(
    session: Session, *, token: str, purpose: OneTimePurpose, now: datetime
) -> User:
    """Mark a live one-time token used (exactly once, even under concurrency); its user."""
    row = session.exec(
        select(OneTimeToken).where(
            OneTimeToken.digest == token_digest(token), OneTimeToken.purpose == purpose
        )
    ).first()
    if row is None or row.used_at is not None or now >= as_utc(row.expires_at):
        raise InvalidOneTimeToken("this token is unknown, used or expired")
    used = session.exec(
        update(OneTimeToken)
        .where(col(OneTimeToken.id) == row.id, col(OneTimeToken.used_at).is_(None))
        .values(used_at=now)
    )
    user = session.get(User, row.user_id)
    if used.rowcount != 1 or user is None or user.disabled_at is not None:
        raise InvalidOneTimeToken("this token is unknown, used or expired")
    return user


CONFIRM_SUBJECT = "Confirm your medvault account"
CONFIRM_BODY = """\
Hello,

please confirm the e-mail address of your new medvault account at {base_url}
with this one-time code (valid for 48 hours):

{token}

If you did not register, ignore this message.
"""
ALREADY_REGISTERED_SUBJECT = "Your medvault account"
ALREADY_REGISTERED_BODY = """\
Hello,

someone, perhaps you, tried to register at {base_url} with this address.
You already have an account: sign in with it.
If you forgot your password, contact the privacy officer.
"""
INVITATION_SUBJECT = "You are invited to medvault"
INVITATION_BODY = """\
Hello,

a coordinator has invited you to medvault at {base_url}. Choose your password there
with this one-time code (valid for 48 hours):

{token}
"""


def register_patient_account(
    session: Session,
    *,
    keys: KeyStore,
    lookup_key: bytes,
    mail: MailContext,
    identity: PatientIdentity,
    password: str,
    now: datetime,
    audit: AuditContext,
) -> None:
    """A patient registers themselves; the e-mail address is their login.

    Answers the same way whether the address already has an account (no account oracle): a new
    account gets a confirmation code by mail, an existing one a "you already have an account"
    mail. If the mail cannot be sent, nothing is stored (NotificationFailed).
    """
    password_hash = hash_password(password)  # hashed either way, so both paths cost the same
    existing = _user_by_digest(session, login_digest(lookup_key, identity.email))
    if existing is not None:
        append_event(
            session,
            context=audit,
            action=AuditAction.PATIENT_REGISTER,
            now=now,
            outcome="refused",
            user_id=existing.id,
        )
        mail.notifier.send(
            Notification(
                to=identity.email,
                subject=ALREADY_REGISTERED_SUBJECT,
                body=ALREADY_REGISTERED_BODY.format(base_url=mail.base_url),
            )
        )
        session.commit()
        return
    patient, user = _new_patient_user(
        session,
        keys=keys,
        lookup_key=lookup_key,
        identity=identity,
        password_hash=password_hash,
        now=now,
    )
    token = _issue_one_time_token(session, user=user, purpose=OneTimePurpose.CONFIRM_EMAIL, now=now)
    append_event(
        session,
        context=audit,
        action=AuditAction.PATIENT_REGISTER,
        now=now,
        patient_id=patient.id,
        user_id=user.id,
    )
    mail.notifier.send(
        Notification(
            to=identity.email,
            subject=CONFIRM_SUBJECT,
            body=CONFIRM_BODY.format(base_url=mail.base_url, token=token),
        )
    )
    session.commit()


def _new_patient_user(
    session: Session,
    *,
    keys: KeyStore,
    lookup_key: bytes,
    identity: PatientIdentity,
    password_hash: str,
    now: datetime,
) -> tuple[Patient, User]:
    patient = register_patient(session=session, keys=keys, identity=identity, now=now)
    user = _new_user(
        session,
        lookup_key=lookup_key,
        login=identity.email,
        role=Role.PATIENT,
        password_hash=password_hash,
        patient_id=patient.id,
        now=now,
    )
    return patient, user


def confirm_email(session: Session, *, token: str, now: datetime, audit: AuditContext) -> User:
    """Confirm a self-registered patient's address with the code mailed to it."""
    user = _consume_one_time_token(
        session, token=token, purpose=OneTimePurpose.CONFIRM_EMAIL, now=now
    )
    user.email_confirmed_at = user.email_confirmed_at or now
    session.add(user)
    append_event(
        session,
        context=audit,
        action=AuditAction.AUTH_CONFIRM_EMAIL,
        now=now,
        patient_id=user.patient_id,
        user_id=user.id,
    )
    session.commit()
    return user


def invite_patient(
    session: Session,
    *,
    keys: KeyStore,
    lookup_key: bytes,
    mail: MailContext,
    identity: PatientIdentity,
    now: datetime,
    audit: AuditContext,
) -> Patient:
    """A coordinator invites a patient: a patient record, and an account without a password
    yet; the mailed one-time code lets the patient choose one. LoginTaken if the address has
    an account already (coordinators may know who is a patient)."""
    patient, user = _new_patient_user(
        session,
        keys=keys,
        lookup_key=lookup_key,
        identity=identity,
        password_hash=UNUSABLE_PASSWORD,
        now=now,
    )
    token = _issue_one_time_token(
        session, user=user, purpose=OneTimePurpose.ACCEPT_INVITATION, now=now
    )
    append_event(
        session,
        context=audit,
        action=AuditAction.PATIENT_INVITE,
        now=now,
        patient_id=patient.id,
        user_id=user.id,
    )
    mail.notifier.send(
        Notification(
            to=identity.email,
            subject=INVITATION_SUBJECT,
            body=INVITATION_BODY.format(base_url=mail.base_url, token=token),
        )
    )
    session.commit()
    return patient


def accept_invitation(
    session: Session, *, token: str, password: str, now: datetime, audit: AuditContext
) -> User:
    """An invited patient sets their password; receiving the code also confirms the address."""
    check_password_policy(password)  # before the token is used up
    user = _consume_one_time_token(
        session, token=token, purpose=OneTimePurpose.ACCEPT_INVITATION, now=now
    )
    user.password_hash = hash_password(password)
    user.email_confirmed_at = user.email_confirmed_at or now
    session.add(user)
    append_event(
        session,
        context=audit,
        action=AuditAction.AUTH_ACCEPT_INVITATION,
        now=now,
        patient_id=user.patient_id,
        user_id=user.id,
    )
    session.commit()
    return user
