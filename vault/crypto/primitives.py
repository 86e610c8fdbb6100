"""Thin named wrappers over pyca/cryptography's hazmat primitives.

Each wrapper fixes the parameters medvault uses (AES-256, 96-bit nonces, 128-bit tags), refuses
anything else with ``ValueError`` (a programming error), and turns every authentication failure
into the one opaque ``DecryptionFailed``. The Wycheproof known-answer tests run these exact
functions, so the envelope and field formats are built only from what those tests cover.
"""

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault.errors import DecryptionFailed

KEY_SIZE = 32  # AES-256 everywhere
GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
SHA256_SIZE = 32
HKDF_SHA256_MAX_LENGTH = 255 * SHA256_SIZE  # RFC 5869: at most 255 blocks of output

Buffer = bytes | bytearray | memoryview


def random_bytes(size: int) -> bytes:
    """Fresh bytes from the operating system's CSPRNG (keys, nonces, nonce prefixes)."""
    return os.urandom(size)


def _require_key(key: Buffer) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"an AES-256 key is {KEY_SIZE} bytes")


def _require_nonce(nonce: Buffer) -> None:
    if len(nonce) != GCM_NONCE_SIZE:
        raise ValueError(f"an AES-GCM nonce is {GCM_NONCE_SIZE} bytes")


class AesGcm256:
    """AES-256-GCM under one key, set up once and reused (the envelope calls it per frame).

    Ciphertexts carry their 16-byte tag at the end. Inputs may be memoryviews, so callers can
    pass slices of a larger buffer without copying them.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: Buffer) -> None:
        _require_key(key)
        self._aead = AESGCM(bytes(key))

    def encrypt(self, nonce: Buffer, plaintext: Buffer, aad: Buffer) -> bytes:
        _require_nonce(nonce)
        return self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: Buffer, ciphertext: Buffer, aad: Buffer) -> bytes:
        """Return the plaintext only once the tag verified; raise DecryptionFailed otherwise."""
        _require_nonce(nonce)
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionFailed() from None

    def __repr__(self) -> str:
        return "AesGcm256(<key redacted>)"


def aes_gcm_encrypt(key: Buffer, nonce: Buffer, plaintext: Buffer, aad: Buffer) -> bytes:
    """AES-256-GCM encryption; returns ciphertext || 16-byte tag."""
    return AesGcm256(key).encrypt(nonce, plaintext, aad)


def aes_gcm_decrypt(key: Buffer, nonce: Buffer, ciphertext: Buffer, aad: Buffer) -> bytes:
    """AES-256-GCM decryption of ciphertext || tag; raises DecryptionFailed if it fails."""
    return AesGcm256(key).decrypt(nonce, ciphertext, aad)


def aes_key_wrap(wrapping_key: Buffer, key_to_wrap: Buffer) -> bytes:
    """AES-KW (RFC 3394) under a 256-bit wrapping key; the wrapped key is 8 bytes longer."""
    _require_key(wrapping_key)
    # RFC 3394 wraps at least two 64-bit blocks; pyca refuses shorter or unaligned keys itself.
    return keywrap.aes_key_wrap(bytes(wrapping_key), bytes(key_to_wrap))


def aes_key_unwrap(wrapping_key: Buffer, wrapped_key: Buffer) -> bytes:
    """Reverse ``aes_key_wrap``; raises DecryptionFailed if the integrity check fails."""
    _require_key(wrapping_key)
    try:
        return keywrap.aes_key_unwrap(bytes(wrapping_key), bytes(wrapped_key))
    except keywrap.InvalidUnwrap:
        raise DecryptionFailed() from None


def hkdf_sha256(ikm: Buffer, salt: Buffer, info: Buffer, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869). An empty salt means a hash-length string of zeros."""
    if not 0 < length <= HKDF_SHA256_MAX_LENGTH:
        raise ValueError(f"HKDF-SHA256 output is 1..{HKDF_SHA256_MAX_LENGTH} bytes")
    kdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=bytes(salt), info=bytes(info))
    return kdf.derive(bytes(ikm))


def hmac_sha256(key: Buffer, message: Buffer) -> bytes:
    """HMAC-SHA256 of ``message`` (the full 32-byte tag)."""
    return hmac.digest(bytes(key), message, hashlib.sha256)


def hmac_sha256_verify(key: Buffer, message: Buffer, tag: Buffer) -> None:
    """Check a full 32-byte HMAC-SHA256 tag in constant time; raises DecryptionFailed."""
    if not hmac.compare_digest(hmac_sha256(key, message), bytes(tag)):
        raise DecryptionFailed() from None


def sha256(data: Buffer) -> bytes:
    return hashlib.sha256(data).digest()


def constant_time_equal(a: Buffer, b: Buffer) -> bool:
    """Compare secrets (tags, key commitments) without leaking where they differ."""
    return hmac.compare_digest(bytes(a), bytes(b))
