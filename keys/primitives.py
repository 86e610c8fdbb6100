"""AES-256-GCM key wrapping for the local keyring: a 32-byte key sealed under a 32-byte root key.

Wire format of a wrapped key (61 bytes)::

    offset  size  field
    0       1     version, 0x01
    1       12    nonce, random
    13      32    ciphertext of the key
    45      16    GCM tag

The associated data is the version byte followed by ``owner`` in UTF-8, so a wrapped key only
unwraps for the owner it was wrapped for, and a changed version byte fails like any other
tampering. Any failure to authenticate is one error, ``KeyUnwrapFailed``.
"""

import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from keys.errors import KeyUnwrapFailed

VERSION = 0x01
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
WRAPPED_SIZE = 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE


def wrap_key(*, root_key: bytes, key: bytes, owner: str) -> bytes:
    """Seal the 32-byte ``key`` under ``root_key``, bound to ``owner``."""
    _require_key_size(root_key, "root key")
    _require_key_size(key, "key")
    nonce = os.urandom(NONCE_SIZE)
    sealed = AESGCM(root_key).encrypt(nonce, key, _associated_data(owner))
    return bytes([VERSION]) + nonce + sealed


def unsafe_unwrap_key(*, root_key: bytes, wrapped: bytes, owner: str) -> bytes:
    """Open a key sealed by ``wrap_key``. Raises KeyUnwrapFailed whatever check fails."""
    _require_key_size(root_key, "root key")
    return _unwrap(AESGCM(root_key), wrapped, owner)


def unsafe_unwrap_keys(*, root_key: bytes, items: Iterable[tuple[bytes, str]]) -> list[bytes]:
    """Open many keys sealed by ``wrap_key`` under one root key, in the order of ``items``
    (wrapped, owner); one cipher for the batch. Raises KeyUnwrapFailed at the first failure."""
    _require_key_size(root_key, "root key")
    aead = AESGCM(root_key)
    return [_unwrap(aead, wrapped, owner) for wrapped, owner in items]


def _unwrap(aead: AESGCM, wrapped: bytes, owner: str) -> bytes:
    if len(wrapped) != WRAPPED_SIZE or wrapped[0] != VERSION:
        raise KeyUnwrapFailed("the wrapped key did not authenticate")
    nonce, sealed = wrapped[1 : 1 + NONCE_SIZE], wrapped[1 + NONCE_SIZE :]
    try:
        return aead.decrypt(nonce, sealed, _associated_data(owner))
    except InvalidTag:
        raise KeyUnwrapFailed("the wrapped key did not authenticate") from None


def _associated_data(owner: str) -> bytes:
    return bytes([VERSION]) + owner.encode("utf-8")


def _require_key_size(key: bytes, what: str) -> None:
    # A programming error, not tampering: say so plainly (the length is not secret).
    if len(key) != KEY_SIZE:
        raise ValueError(f"the {what} must be {KEY_SIZE} bytes, got {len(key)}")
