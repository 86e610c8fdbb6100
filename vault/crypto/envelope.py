"""The envelope-encrypted, streaming object format every stored document uses (version 1).

One random data key (DEK) per object, wrapped under the case key and kept in the object's header;
the plaintext is cut into frames of AES-256-GCM that are written and read one at a time, so memory
stays bounded by about two frames whatever the size of the document. ``EnvelopeEncryptor``'s
docstring is the byte-by-byte specification.
"""

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from uuid import UUID

from vault.crypto.primitives import (
    GCM_TAG_SIZE,
    KEY_SIZE,
    AesGcm256,
    Buffer,
    aes_key_unwrap,
    aes_key_wrap,
    constant_time_equal,
    hkdf_sha256,
    random_bytes,
    sha256,
)
from vault.errors import DecryptionFailed, DocumentTooLarge

VERSION = 0x01
MAGIC = b"MVLT"
SUITE_AES256GCM_HKDF_SHA256_AESKW = 0x01
HEADER_SIZE = 122
MIN_FRAME_SIZE = 64 * 1024
MAX_FRAME_SIZE = 16 * 1024 * 1024
DEFAULT_FRAME_SIZE = 1024 * 1024
# The frame counter is 32 bits of the nonce: past 2**32 frames a nonce would repeat.
MAX_FRAMES = 2**32

WRAPPED_DEK_SIZE = KEY_SIZE + 8  # AES-KW adds one 64-bit integrity block
NONCE_PREFIX_SIZE = 8
COMMITMENT_SIZE = 32
DERIVATION_LABEL = b"medvault/v1"

_HEADER_LAYOUT = struct.Struct(">B4sBI16s16s40s8s32s")  # HEADER_SIZE bytes, no padding
_FRAME_COUNTER = struct.Struct(">I")
_FRAME_POSITION = struct.Struct(">QB")  # frame index, final flag: the AAD after the header hash


@dataclass(frozen=True)
class EnvelopeHeader:
    """The fixed 122-byte header of an envelope (see ``EnvelopeEncryptor`` for the layout)."""

    version: int
    suite: int
    frame_size: int
    object_id: UUID
    key_id: UUID
    wrapped_dek: bytes
    nonce_prefix: bytes
    commitment: bytes

    def __post_init__(self) -> None:
        if len(self.wrapped_dek) != WRAPPED_DEK_SIZE:
            raise ValueError(f"a wrapped data key is {WRAPPED_DEK_SIZE} bytes")
        if len(self.nonce_prefix) != NONCE_PREFIX_SIZE:
            raise ValueError(f"a nonce prefix is {NONCE_PREFIX_SIZE} bytes")
        if len(self.commitment) != COMMITMENT_SIZE:
            raise ValueError(f"a key commitment is {COMMITMENT_SIZE} bytes")

    def to_bytes(self) -> bytes:
        return _HEADER_LAYOUT.pack(
            self.version,
            MAGIC,
            self.suite,
            self.frame_size,
            self.object_id.bytes,
            self.key_id.bytes,
            self.wrapped_dek,
            self.nonce_prefix,
            self.commitment,
        )

    @classmethod
    def parse(cls, data: Buffer) -> "EnvelopeHeader":
        """Read a header this version understands; anything else raises DecryptionFailed."""
        if len(data) != HEADER_SIZE:
            raise DecryptionFailed() from None
        (version, magic, suite, frame_size, object_id, key_id, wrapped_dek, prefix, commitment) = (
            _HEADER_LAYOUT.unpack(data)
        )
        if (
            version != VERSION
            or magic != MAGIC
            or suite != SUITE_AES256GCM_HKDF_SHA256_AESKW
            or not MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE
        ):
            raise DecryptionFailed() from None
        return cls(
            version=version,
            suite=suite,
            frame_size=frame_size,
            object_id=UUID(bytes=object_id),
            key_id=UUID(bytes=key_id),
            wrapped_dek=wrapped_dek,
            nonce_prefix=prefix,
            commitment=commitment,
        )


class EnvelopeEncryptor:
    """Writes one object in envelope format version 1: the header, then its frames in order.

    Header (122 bytes, integers big-endian)::

        offset len  field
        0      1    version = 0x01 (first, so a reader can dispatch before parsing anything else)
        1      4    magic b"MVLT"
        5      1    suite = 0x01: AES-256-GCM frames, HKDF-SHA256 key derivation and key
                    commitment, data key wrapped with AES-KW (RFC 3394) under the case key
        6      4    frame_size: uint32, plaintext bytes per full frame, 64 KiB .. 16 MiB
        10     16   object_id: UUID bytes of the document
        26     16   key_id: UUID bytes of the case key that wraps the data key
        42     40   wrapped DEK = AES-KW(case_key, DEK), DEK = 32 random bytes
        82     8    nonce_prefix: random per object
        90     32   key commitment
        122         end of header; header_hash = SHA-256(header[0:122])

    Keys: ``okm = HKDF-SHA256(ikm=DEK, salt=nonce_prefix, info=b"medvault/v1" || object_id ||
    key_id, length=64)``; the frame key is okm[0:32] and the key commitment okm[32:64]. A reader
    recomputes the commitment and compares it in constant time before touching any frame, so one
    ciphertext cannot be made to decrypt validly under two different keys.

    Frames, i = 0, 1, ... (at most 2**32)::

        nonce      = nonce_prefix (8) || i as uint32 (4)
        aad        = header_hash (32) || i as uint64 (8) || final flag (1: 0x01 last, 0x00 other)
        frame i    = AES-256-GCM(frame key, nonce, aad, plaintext_i) || tag (16)

    Every frame but the last holds exactly ``frame_size`` plaintext bytes; the last holds
    ``L % frame_size`` bytes (possibly none: then it is the 16-byte tag alone), so a plaintext of
    L bytes has ``L // frame_size + 1`` frames and ``ciphertext_size(L, frame_size)`` bytes in all.
    Because the final frame is always shorter than a full one, a full frame is never final:
    writer and reader know a frame's flag from its size alone, and a reader takes a short frame
    as final only when the stream ends with it. The AAD binds every frame to this header, its
    position and its finality, so reordering, truncating, extending or splicing frames between
    objects fails authentication.
    """

    def __init__(
        self,
        *,
        case_key: bytes,
        key_id: UUID,
        object_id: UUID,
        frame_size: int = DEFAULT_FRAME_SIZE,
    ) -> None:
        _require_case_key(case_key)
        if not MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE:
            raise ValueError(f"frame_size must be {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE} bytes")
        dek = random_bytes(KEY_SIZE)
        nonce_prefix = random_bytes(NONCE_PREFIX_SIZE)
        frame_key, commitment = _derive_keys(
            dek=dek, nonce_prefix=nonce_prefix, object_id=object_id, key_id=key_id
        )
        header = EnvelopeHeader(
            version=VERSION,
            suite=SUITE_AES256GCM_HKDF_SHA256_AESKW,
            frame_size=frame_size,
            object_id=object_id,
            key_id=key_id,
            wrapped_dek=aes_key_wrap(case_key, dek),
            nonce_prefix=nonce_prefix,
            commitment=commitment,
        )
        self._header = header
        self._header_bytes = header.to_bytes()
        self._frames = _FrameCipher(AesGcm256(frame_key), nonce_prefix, sha256(self._header_bytes))
        self._frame_size = frame_size
        self._next_index = 0
        self._finished = False

    @property
    def wrapped_dek(self) -> bytes:
        return self._header.wrapped_dek

    @property
    def header(self) -> bytes:
        """The 122 header bytes, to be written before the first frame."""
        return self._header_bytes

    @property
    def frame_size(self) -> int:
        return self._frame_size

    def encrypt_frame(self, plaintext: Buffer, *, final: bool) -> bytes:
        """Encrypt the next frame: exactly ``frame_size`` bytes, or fewer for the final one.

        For pipelines that cut frames themselves. Raises ValueError on a wrong size or a frame
        after the final one (nothing is consumed then: the next call still gets the same index).
        """
        if self._finished:
            raise ValueError("the final frame was already encrypted")
        size = memoryview(plaintext).nbytes
        if final and size >= self._frame_size:
            raise ValueError("the final frame holds fewer than frame_size bytes")
        if not final and size != self._frame_size:
            raise ValueError("a frame that is not final holds exactly frame_size bytes")
        # The last frame a counter allows must be the final one: refuse to need more.
        if self._next_index >= MAX_FRAMES - (0 if final else 1):
            raise DocumentTooLarge("the document is too large to encrypt")
        ciphertext = self._frames.encrypt(self._next_index, plaintext, final=final)
        self._next_index += 1
        self._finished = final
        return ciphertext

    def encrypt(self, chunks: Iterable[Buffer]) -> Iterator[bytes]:
        """Yield the header, then one ciphertext frame per item, from chunks of any size."""
        if self._next_index or self._finished:
            raise ValueError("this encryptor already started writing frames")
        yield self._header_bytes
        for piece in _exact_views(chunks, self._frame_size):
            yield self.encrypt_frame(piece, final=len(piece) < self._frame_size)
        if not self._finished:
            # The plaintext length was a multiple of frame_size: an empty final frame ends it.
            yield self.encrypt_frame(b"", final=True)

    def __repr__(self) -> str:
        return f"EnvelopeEncryptor(object_id={self._header.object_id}, <keys redacted>)"


def decrypt(
    chunks: Iterable[Buffer], *, case_key: bytes, key_id: UUID, object_id: UUID
) -> Iterator[bytes]:
    """Yield the verified plaintext of an envelope, one frame per item, as it streams in.

    ``key_id`` and ``object_id`` are what the caller expects (from the database row), not what
    the header claims. Any failed check, whichever it is, raises the one opaque
    ``DecryptionFailed`` at the point it is found; every item yielded before that was verified.
    Chunks may be of any size and need not line up with frames.
    """
    _require_case_key(case_key)
    return _decrypted_frames(
        iter(chunks), case_key=bytes(case_key), key_id=key_id, object_id=object_id
    )


def ciphertext_size(plaintext_size: int, frame_size: int) -> int:
    """Size in bytes of the envelope of ``plaintext_size`` bytes cut into ``frame_size`` frames."""
    if plaintext_size < 0:
        raise ValueError("plaintext_size is never negative")
    if not MIN_FRAME_SIZE <= frame_size <= MAX_FRAME_SIZE:
        raise ValueError(f"frame_size must be {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE} bytes")
    frames = plaintext_size // frame_size + 1
    return HEADER_SIZE + plaintext_size + frames * GCM_TAG_SIZE


def rechunk(chunks: Iterable[Buffer], size: int) -> Iterator[bytes]:
    """Re-cut a stream into pieces of exactly ``size`` bytes; the last one may be shorter.

    Never yields an empty piece (an empty stream gives nothing).
    """
    for view in _exact_views(chunks, size):
        yield bytes(view)


class _FrameCipher:
    """Nonce and AAD construction of the frames of one object, around its frame key."""

    __slots__ = ("_aead", "_header_hash", "_nonce_prefix")

    def __init__(self, aead: AesGcm256, nonce_prefix: bytes, header_hash: bytes) -> None:
        self._aead = aead
        self._nonce_prefix = nonce_prefix
        self._header_hash = header_hash

    def _nonce(self, index: int) -> bytes:
        return self._nonce_prefix + _FRAME_COUNTER.pack(index)

    def _aad(self, index: int, final: bool) -> bytes:
        return self._header_hash + _FRAME_POSITION.pack(index, 1 if final else 0)

    def encrypt(self, index: int, plaintext: Buffer, *, final: bool) -> bytes:
        return self._aead.encrypt(self._nonce(index), plaintext, self._aad(index, final))

    def decrypt(self, index: int, ciphertext: Buffer, *, final: bool) -> bytes:
        return self._aead.decrypt(self._nonce(index), ciphertext, self._aad(index, final))


def _require_case_key(case_key: bytes) -> None:
    if len(case_key) != KEY_SIZE:
        raise ValueError(f"a case key is {KEY_SIZE} bytes")


def _derive_keys(
    *, dek: bytes, nonce_prefix: bytes, object_id: UUID, key_id: UUID
) -> tuple[bytes, bytes]:
    """Return (frame key, key commitment) for one object."""
    info = DERIVATION_LABEL + object_id.bytes + key_id.bytes
    okm = hkdf_sha256(dek, nonce_prefix, info, 2 * KEY_SIZE)
    return okm[:KEY_SIZE], okm[KEY_SIZE:]


def _decrypted_frames(
    source: Iterator[Buffer], *, case_key: bytes, key_id: UUID, object_id: UUID
) -> Iterator[bytes]:
    header_bytes, rest = _read_header(source)
    header = EnvelopeHeader.parse(header_bytes)
    if header.object_id != object_id or header.key_id != key_id:
        raise DecryptionFailed() from None
    dek = aes_key_unwrap(case_key, header.wrapped_dek)
    frame_key, commitment = _derive_keys(
        dek=dek, nonce_prefix=header.nonce_prefix, object_id=object_id, key_id=key_id
    )
    if not constant_time_equal(commitment, header.commitment):
        raise DecryptionFailed() from None
    frames = _FrameCipher(AesGcm256(frame_key), header.nonce_prefix, sha256(header_bytes))
    full_frame = header.frame_size + GCM_TAG_SIZE
    # _exact_views yields a short segment only when the stream ends, so a short segment is the
    # final frame and nothing can follow it; a stream ending on a full frame has lost its end.
    segments = _exact_views(chain((rest,), source), full_frame)
    for index, segment in enumerate(segments):
        final = len(segment) < full_frame
        if index >= MAX_FRAMES or len(segment) < GCM_TAG_SIZE:
            raise DecryptionFailed() from None
        yield frames.decrypt(index, segment, final=final)
        if final:
            return
    raise DecryptionFailed() from None


def _read_header(source: Iterator[Buffer]) -> tuple[bytes, memoryview]:
    """Take the header bytes off the stream; return them and what followed in the same chunk."""
    header = bytearray()
    for chunk in source:
        view = memoryview(chunk).cast("B")
        missing = HEADER_SIZE - len(header)
        header += view[:missing]
        if len(header) == HEADER_SIZE:
            return bytes(header), view[missing:]
    raise DecryptionFailed() from None  # the stream ended inside the header


def _exact_views(chunks: Iterable[Buffer], size: int) -> Iterator[memoryview]:
    """Re-cut a stream into views of exactly ``size`` bytes, the last one shorter (never empty).

    A view is valid only until the next one is asked for: it may point into a buffer that is
    reused. Whole pieces inside a large chunk are views of that chunk (no copy); only pieces
    that straddle chunks are copied, once, into the one reusable buffer.
    """
    if size <= 0:
        raise ValueError("size must be positive")
    buffer = memoryview(bytearray(size))
    filled = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        position, available = 0, len(view)
        if filled:
            taken = min(size - filled, available)
            buffer[filled : filled + taken] = view[:taken]
            filled += taken
            position = taken
            if filled == size:
                yield buffer
                filled = 0
        while available - position >= size:
            yield view[position : position + size]
            position += size
        if position < available:
            filled = available - position
            buffer[:filled] = view[position:]
        del chunk, view  # let the source free this chunk before it makes the next one
    if filled:
        yield buffer[:filled]
