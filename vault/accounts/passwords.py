"""Password hashing (argon2id) and login normalisation.

Logins are never stored: only their HMAC-SHA256 digest under the login lookup key, so a copy
of the database does not list who has an account. Password checks for unknown logins still
run one argon2 verification against a dummy hash, so the answer time is no account oracle.
"""

import functools
import os
import secrets
import threading
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from vault.crypto.primitives import hmac_sha256
from vault.errors import InvalidLogin, WeakPassword

# The one place the hashing cost is chosen: RFC 9106's second recommended option (argon2id,
# t=3, m=64 MiB, p=4). Hashes made with other parameters are upgraded at the next login.
ARGON2_PARAMETERS = RFC_9106_LOW_MEMORY
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 accepts anything; this caps the work one request can ask for
MAX_LOGIN_LENGTH = 320  # the longest valid e-mail address, counted as given
# What a login must contain to be one: a character that is not white space as str.strip() sees
# it (no other character normalises to nothing), written for JSON Schema (ECMA-262) and `re`.
LOGIN_PATTERN = (
    "[^" + "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace()) + "]"
)

# Stored for accounts that have no password yet (invited patients): no argon2 hash looks so.
UNUSABLE_PASSWORD = "!"  # noqa: S105 - a marker, not a password

_hasher = PasswordHasher.from_parameters(ARGON2_PARAMETERS)
# Each argon2 run takes 64 MiB for its whole duration. Without a cap, a burst of sign-ins or
# link downloads (a thread pool of 40) would need 2.5 GiB; with one run per CPU, memory stays
# bounded and throughput is the same, since the work is CPU-bound anyway.
_argon2_slots = threading.BoundedSemaphore(os.cpu_count() or 1)


def check_password_policy(password: str) -> None:
    """Raise WeakPassword unless the password's length is within the policy."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """An argon2id hash of a password that meets the policy (raises WeakPassword otherwise)."""
    check_password_policy(password)
    return hash_secret(password)


def hash_secret(secret: str) -> str:
    """An argon2id hash of any secret a person types (passwords, access codes); no policy."""
    with _argon2_slots:
        return _hasher.hash(secret)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; always costs one argon2 verification, match or not."""
    if len(password) > MAX_PASSWORD_LENGTH:
        return False  # refused before any hashing, whatever the account
    if password_hash == UNUSABLE_PASSWORD:
        burn_verification(password)
        return False
    try:
        with _argon2_slots:
            return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_verification(password: str) -> None:
    """Spend the time of one verification, for a login that has no account behind it."""
    verify_password(_dummy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    return password_hash != UNUSABLE_PASSWORD and _hasher.check_needs_rehash(password_hash)


def normalise_login(login: str) -> str:
    """The canonical form of a login: NFKC, case-folded, surrounding white space removed."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login).casefold())
    return folded.strip()


def login_digest(lookup_key: bytes, login: str) -> str:
    """The hex HMAC-SHA256 a login is stored and looked up as. Raises InvalidLogin if it is
    longer than MAX_LOGIN_LENGTH or only white space (what ``LOGIN_PATTERN`` tells clients)."""
    normalised = normalise_login(login)
    if not normalised or len(login) > MAX_LOGIN_LENGTH:
        raise InvalidLogin(f"a login has 1 to {MAX_LOGIN_LENGTH} characters")
    return hmac_sha256(lookup_key, normalised.encode()).hex()
