"""Small values (names, e-mail addresses, free text) sealed under a patient or case key.

Sealed format, version 1::

    offset len  field
    0      1    version = 0x01
    1      12   nonce, random per value
    13     -    AES-256-GCM ciphertext of the value, 16-byte tag at the end

The associated data is ``version || context``. The context names where the value lives (for
example ``b"patient:<uuid>:email"``), so a sealed value copied into another row or column does
not open there. Random 96-bit nonces are safe for far more values than one key ever seals.
"""

from vault.crypto.primitives import GCM_NONCE_SIZE, GCM_TAG_SIZE, AesGcm256, Buffer, random_bytes
from vault.errors import DecryptionFailed

FIELD_VERSION = 0x01
_VERSION_BYTE = bytes([FIELD_VERSION])
_OVERHEAD = 1 + GCM_NONCE_SIZE + GCM_TAG_SIZE


def seal_field(key: bytes, plaintext: bytes, *, context: bytes) -> bytes:
    """Encrypt and authenticate one value; returns version || nonce || ciphertext+tag."""
    nonce = random_bytes(GCM_NONCE_SIZE)
    ciphertext = AesGcm256(key).encrypt(nonce, plaintext, _VERSION_BYTE + context)
    return _VERSION_BYTE + nonce + ciphertext


def open_field(key: bytes, sealed: Buffer, *, context: bytes) -> bytes:
    """Return the value sealed by ``seal_field`` with this key and context.

    Raises DecryptionFailed if the key or context differ, or any byte was changed.
    """
    return FieldOpener(key).open(sealed, context=context)


class FieldOpener:
    """``open_field`` for several values under one key, with the cipher set up once."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AesGcm256(key)  # a key of the wrong length is a programming error

    def open(self, sealed: Buffer, *, context: bytes) -> bytes:
        view = memoryview(sealed).cast("B")
        if len(view) < _OVERHEAD or view[0] != FIELD_VERSION:
            raise DecryptionFailed() from None
        return self._aead.decrypt(
            view[1 : 1 + GCM_NONCE_SIZE], view[1 + GCM_NONCE_SIZE :], _VERSION_BYTE + context
        )

    def __repr__(self) -> str:
        return "FieldOpener(<key redacted>)"
