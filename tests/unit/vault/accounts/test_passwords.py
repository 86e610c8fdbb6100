"""Password policy, argon2id hashing and rehashing, login normalisation and digests."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from vault.accounts.passwords import (
    LOGIN_PATTERN,
    MAX_LOGIN_LENGTH,
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    UNUSABLE_PASSWORD,
    hash_password,
    login_digest,
    needs_rehash,
    normalise_login,
    verify_password,
)
from vault.errors import InvalidLogin, WeakPassword

KEY = bytes(32)
GOOD = "a" * MIN_PASSWORD_LENGTH

pytestmark = pytest.mark.real_password_hashing  # these tests are about the real cost


def test_hash_is_argon2id_and_verifies() -> None:
    hashed = hash_password(GOOD)

    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, GOOD)
    assert not verify_password(hashed, GOOD + "b")
    assert not needs_rehash(hashed)


@pytest.mark.parametrize("length", [0, MIN_PASSWORD_LENGTH - 1, MAX_PASSWORD_LENGTH + 1])
def test_passwords_outside_the_policy_are_refused(length: int) -> None:
    with pytest.raises(WeakPassword):
        hash_password("x" * length)


def test_longest_allowed_password_is_accepted() -> None:
    password = "x" * MAX_PASSWORD_LENGTH
    assert verify_password(hash_password(password), password)


def test_weaker_parameters_need_a_rehash() -> None:
    old = PasswordHasher.from_parameters(CHEAPEST).hash(GOOD)

    assert verify_password(old, GOOD)
    assert needs_rehash(old)


def test_unusable_and_malformed_hashes_never_verify() -> None:
    assert not verify_password(UNUSABLE_PASSWORD, "")
    assert not verify_password(UNUSABLE_PASSWORD, GOOD)
    assert not verify_password("not a hash", GOOD)
    assert not needs_rehash(UNUSABLE_PASSWORD)


def test_overlong_password_is_refused_without_hashing() -> None:
    hashed = hash_password(GOOD)
    assert not verify_password(hashed, GOOD + "x" * MAX_PASSWORD_LENGTH)


FULL_WIDTH_ERIKA = "\uff45\uff52\uff49\uff4b\uff41@example.org"


@pytest.mark.parametrize(
    "variant", ["Erika@Example.ORG", "  erika@example.org\t", FULL_WIDTH_ERIKA]
)
def test_login_variants_share_one_digest(variant: str) -> None:
    assert normalise_login(variant) == "erika@example.org"
    assert login_digest(KEY, variant) == login_digest(KEY, "erika@example.org")


def test_digest_depends_on_the_key_and_hides_the_login() -> None:
    digest = login_digest(KEY, "erika@example.org")

    assert len(digest) == 64
    assert "erika" not in digest
    assert digest != login_digest(b"\x01" * 32, "erika@example.org")


@pytest.mark.parametrize("login", ["", "   ", "\f\x1c\u3000\x85", "x" * 321])
def test_empty_or_overlong_logins_are_refused(login: str) -> None:
    with pytest.raises(InvalidLogin):
        login_digest(KEY, login)


def test_the_length_limit_counts_the_login_as_given() -> None:
    # NFKC makes 18 characters of this one: the schema's maxLength is about what is sent.
    assert len(normalise_login("\ufdfa")) == 18
    assert len(login_digest(KEY, "\ufdfa" * MAX_LOGIN_LENGTH)) == 64


@pytest.mark.parametrize("login", ["k", " k ", "\f", "\x1c\u3000", "\ufeff", "\u200b", "\x85a"])
def test_the_schemas_login_pattern_says_what_is_refused(login: str) -> None:
    """LOGIN_PATTERN (in the OpenAPI document) matches exactly the logins that are not refused
    for being only white space (found by OpenAPI fuzzing: "\\f" was schema-valid but refused)."""
    try:
        login_digest(KEY, login)
    except InvalidLogin:
        accepted = False
    else:
        accepted = True
    assert (re.search(LOGIN_PATTERN, login) is not None) == accepted
