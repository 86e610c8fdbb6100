"""Field sealing: small values under a patient or case key, bound to where they are stored."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.crypto.fields import open_field, seal_field
from vault.crypto.primitives import aes_gcm_decrypt
from vault.errors import DecryptionFailed

CONTEXT = b"patient:6f1c0d2e-6a43-4f61-9a59-2b1d3f0c9e11:email"
OVERHEAD = 1 + 12 + 16


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


def assert_opaque_failure(key: bytes, sealed: bytes, context: bytes) -> None:
    with pytest.raises(DecryptionFailed) as failure:
        open_field(key, sealed, context=context)
    assert type(failure.value) is DecryptionFailed
    assert failure.value.__cause__ is None


@pytest.mark.parametrize(
    "value",
    [b"", b"a", "Zoë Müller-Łukasiewicz".encode(), b"x" * 100_000],
    ids=["empty", "one-byte", "unicode-name", "long-free-text"],
)
def test_round_trip(key: bytes, value: bytes) -> None:
    sealed = seal_field(key, value, context=CONTEXT)
    assert len(sealed) == len(value) + OVERHEAD
    assert sealed[0] == 0x01
    assert open_field(key, sealed, context=CONTEXT) == value
    assert open_field(key, memoryview(sealed), context=CONTEXT) == value


@settings(max_examples=50, deadline=None)
@given(value=st.binary(max_size=2000), context=st.binary(max_size=100))
def test_round_trip_any_value_and_context(value: bytes, context: bytes) -> None:
    key = os.urandom(32)
    assert open_field(key, seal_field(key, value, context=context), context=context) == value


def test_layout_is_version_nonce_ciphertext(key: bytes) -> None:
    value = b"jane@example.org"
    sealed = seal_field(key, value, context=CONTEXT)
    nonce, ciphertext = sealed[1:13], sealed[13:]
    assert aes_gcm_decrypt(key, nonce, ciphertext, b"\x01" + CONTEXT) == value
    assert value not in sealed


def test_each_seal_uses_a_fresh_nonce(key: bytes) -> None:
    sealed = {seal_field(key, b"same value", context=CONTEXT) for _ in range(50)}
    assert len(sealed) == 50
    assert len({s[1:13] for s in sealed}) == 50


def test_wrong_context_fails(key: bytes) -> None:
    sealed = seal_field(key, b"Jane Doe", context=CONTEXT)
    for context in [b"", CONTEXT + b"x", CONTEXT[:-1], CONTEXT.replace(b"email", b"phone")]:
        assert_opaque_failure(key, sealed, context)


def test_wrong_key_fails(key: bytes) -> None:
    sealed = seal_field(key, b"Jane Doe", context=CONTEXT)
    assert_opaque_failure(os.urandom(32), sealed, CONTEXT)


def test_every_flipped_byte_fails(key: bytes) -> None:
    sealed = seal_field(key, b"Jane Doe", context=CONTEXT)
    for position in range(len(sealed)):
        for mask in (0x01, 0x80):
            tampered = bytearray(sealed)
            tampered[position] ^= mask
            assert_opaque_failure(key, bytes(tampered), CONTEXT)


def test_truncated_or_extended_fails(key: bytes) -> None:
    sealed = seal_field(key, b"Jane Doe", context=CONTEXT)
    for length in range(len(sealed)):
        assert_opaque_failure(key, sealed[:length], CONTEXT)
    assert_opaque_failure(key, sealed + b"\x00", CONTEXT)


def test_other_version_fails(key: bytes) -> None:
    sealed = bytearray(seal_field(key, b"Jane Doe", context=CONTEXT))
    for version in (0x00, 0x02, 0xFF):
        sealed[0] = version
        assert_opaque_failure(key, bytes(sealed), CONTEXT)


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_key_of_the_wrong_length_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        seal_field(b"k" * length, b"Jane Doe", context=CONTEXT)
    with pytest.raises(ValueError, match="32 bytes"):
        open_field(b"k" * length, b"\x01" + b"\x00" * 40, context=CONTEXT)
