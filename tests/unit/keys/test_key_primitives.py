"""AES-256-GCM key wrapping of the local keyring: round trip, owner binding, tampering."""

import os

import pytest

from keys.errors import KeyUnwrapFailed
from keys.primitives import WRAPPED_SIZE, unsafe_unwrap_key, wrap_key

ROOT = bytes(range(32))
KEY = bytes(range(100, 132))
OWNER = "case:8f2c8e9e-5d7c-4a5e-9d7e-0c2a4c1b9e11"


def test_round_trip() -> None:
    wrapped = wrap_key(root_key=ROOT, key=KEY, owner=OWNER)

    assert len(wrapped) == WRAPPED_SIZE
    assert wrapped[0] == 0x01
    assert KEY not in wrapped
    assert unsafe_unwrap_key(root_key=ROOT, wrapped=wrapped, owner=OWNER) == KEY


def test_nonce_is_fresh_each_time() -> None:
    first = wrap_key(root_key=ROOT, key=KEY, owner=OWNER)
    second = wrap_key(root_key=ROOT, key=KEY, owner=OWNER)

    assert first[1:13] != second[1:13]
    assert first != second


def test_wrong_owner_fails() -> None:
    wrapped = wrap_key(root_key=ROOT, key=KEY, owner=OWNER)

    with pytest.raises(KeyUnwrapFailed):
        unsafe_unwrap_key(root_key=ROOT, wrapped=wrapped, owner="patient:" + OWNER[5:])


def test_another_root_key_fails() -> None:
    wrapped = wrap_key(root_key=ROOT, key=KEY, owner=OWNER)

    with pytest.raises(KeyUnwrapFailed):
        unsafe_unwrap_key(root_key=os.urandom(32), wrapped=wrapped, owner=OWNER)


@pytest.mark.parametrize(
    "position",
    [0, 1, 12, 13, 44, 45, WRAPPED_SIZE - 1],
    ids=[
        "version",
        "nonce-first",
        "nonce-last",
        "ciphertext-first",
        "ciphertext-last",
        "tag-first",
        "tag-last",
    ],
)
def test_a_flipped_byte_anywhere_fails(position: int) -> None:
    wrapped = bytearray(wrap_key(root_key=ROOT, key=KEY, owner=OWNER))
    wrapped[position] ^= 0x01

    with pytest.raises(KeyUnwrapFailed):
        unsafe_unwrap_key(root_key=ROOT, wrapped=bytes(wrapped), owner=OWNER)


def test_every_single_bit_flip_fails() -> None:
    wrapped = wrap_key(root_key=ROOT, key=KEY, owner=OWNER)
    for position in range(len(wrapped)):
        for bit in range(8):
            tampered = bytearray(wrapped)
            tampered[position] ^= 1 << bit
            with pytest.raises(KeyUnwrapFailed):
                unsafe_unwrap_key(root_key=ROOT, wrapped=bytes(tampered), owner=OWNER)


@pytest.mark.parametrize("change", ["truncated", "extended", "empty"])
def test_wrong_length_fails(change: str) -> None:
    wrapped = wrap_key(root_key=ROOT, key=KEY, owner=OWNER)
    altered = {"truncated": wrapped[:-1], "extended": wrapped + b"\x00", "empty": b""}[change]

    with pytest.raises(KeyUnwrapFailed):
        unsafe_unwrap_key(root_key=ROOT, wrapped=altered, owner=OWNER)


def test_error_says_nothing_about_the_key() -> None:
    wrapped = wrap_key(root_key=ROOT, key=KEY, owner=OWNER)

    with pytest.raises(KeyUnwrapFailed) as caught:
        unsafe_unwrap_key(root_key=ROOT, wrapped=wrapped, owner="case:other")

    assert str(caught.value) == "the wrapped key did not authenticate"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(("root", "key"), [(ROOT[:16], KEY), (ROOT, KEY[:31]), (ROOT + b"x", KEY)])
def test_wrong_key_sizes_are_refused(root: bytes, key: bytes) -> None:
    with pytest.raises(ValueError, match="must be 32 bytes"):
        wrap_key(root_key=root, key=key, owner=OWNER)
