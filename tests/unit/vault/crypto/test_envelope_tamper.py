"""Tampered, truncated, extended, reordered and spliced envelopes all fail the same opaque way.

Every case checks three things: the error is exactly ``DecryptionFailed`` with nothing chained
to it, and everything yielded before it is verified plaintext of the frames before the damage
(so a consumer never receives a byte it should not have).
"""

import hashlib
import os
import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from vault.crypto.envelope import (
    HEADER_SIZE,
    MIN_FRAME_SIZE,
    EnvelopeEncryptor,
    decrypt,
)
from vault.crypto.primitives import aes_gcm_encrypt, aes_key_unwrap, hkdf_sha256
from vault.errors import DecryptionFailed

FS = MIN_FRAME_SIZE
TAG = 16
FULL = FS + TAG
FINAL_PLAINTEXT = 1000
# Three full frames and a short final one: frames 0 (first), 1 (middle), 2, 3 (last).
PLAINTEXT_SIZE = 3 * FS + FINAL_PLAINTEXT
FRAME_COUNT = 4


@dataclass(frozen=True)
class Sealed:
    blob: bytes
    plaintext: bytes
    case_key: bytes
    key_id: uuid.UUID
    object_id: uuid.UUID

    @property
    def expected(self) -> dict[str, object]:
        return {"case_key": self.case_key, "key_id": self.key_id, "object_id": self.object_id}

    def frame(self, index: int) -> bytes:
        start = HEADER_SIZE + index * FULL
        return self.blob[start : start + FULL]

    def plaintext_frames(self, count: int) -> list[bytes]:
        return [self.plaintext[i * FS : (i + 1) * FS] for i in range(count)]


def seal(plaintext: bytes, *, case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID) -> Sealed:
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
    )
    blob = b"".join(encryptor.encrypt([plaintext]))
    return Sealed(blob, plaintext, case_key, key_id, object_id)


@pytest.fixture(scope="module")
def sealed() -> Sealed:
    return seal(
        os.urandom(PLAINTEXT_SIZE),
        case_key=os.urandom(32),
        key_id=uuid.uuid4(),
        object_id=uuid.uuid4(),
    )


@pytest.fixture(scope="module")
def sibling(sealed: Sealed) -> Sealed:
    """Another document of the same case and size: same case key, same key id, other object."""
    return seal(
        os.urandom(PLAINTEXT_SIZE),
        case_key=sealed.case_key,
        key_id=sealed.key_id,
        object_id=uuid.uuid4(),
    )


def chunked(blob: bytes, size: int) -> list[bytes]:
    return [blob[i : i + size] for i in range(0, len(blob), size)]


def decrypt_until_failure(chunks: Iterable[bytes], **expected: object) -> list[bytes]:
    """Run decrypt to its end; it must fail opaquely. Returns what it yielded before failing."""
    yielded: list[bytes] = []
    failure: DecryptionFailed | None = None
    try:
        for frame in decrypt(chunks, **expected):  # type: ignore[arg-type]
            yielded.append(frame)
    except DecryptionFailed as caught:
        failure = caught
    assert failure is not None, "decryption succeeded"
    assert type(failure) is DecryptionFailed
    assert failure.args == ("decryption failed",)  # the class's fixed text, nothing specific
    assert failure.__cause__ is None
    assert failure.__suppress_context__
    return yielded


def assert_fails_after(blob: bytes, sealed: Sealed, good_frames: int, **expected: object) -> None:
    """Decrypting ``blob`` yields exactly the first ``good_frames`` frames, then fails."""
    expected = expected or sealed.expected
    for chunks in ([blob], chunked(blob, 4099)):
        yielded = decrypt_until_failure(chunks, **expected)
        assert yielded == sealed.plaintext_frames(good_frames)


def test_the_untampered_object_decrypts(sealed: Sealed) -> None:
    """The control for every test below."""
    frames = list(decrypt([sealed.blob], **sealed.expected))  # type: ignore[arg-type]
    assert len(frames) == FRAME_COUNT
    assert b"".join(frames) == sealed.plaintext


# --- one flipped bit in every region of the wire format -----------------------------------------

HEADER_FIELDS = {
    "version": (0, 1),
    "magic": (1, 4),
    "suite": (5, 1),
    "frame_size": (6, 4),
    "object_id": (10, 16),
    "key_id": (26, 16),
    "wrapped_dek": (42, 40),
    "nonce_prefix": (82, 8),
    "commitment": (90, 32),
}
HEADER_FLIPS = [
    pytest.param(offset, bit, id=f"header.{name}[{offset - start}].bit{bit}")
    for name, (start, length) in HEADER_FIELDS.items()
    # first byte (lowest and highest bit), a middle byte, the last byte
    for offset, bit in sorted(
        {(start, 0), (start, 7), (start + length // 2, 3), (start + length - 1, 0)}
    )
]


@pytest.mark.parametrize(("offset", "bit"), HEADER_FLIPS)
def test_a_flipped_header_bit_fails_before_any_plaintext(
    sealed: Sealed, offset: int, bit: int
) -> None:
    blob = bytearray(sealed.blob)
    blob[offset] ^= 1 << bit
    assert_fails_after(bytes(blob), sealed, good_frames=0)


FRAME_REGIONS = {
    "ciphertext.first": lambda size: 0,
    "ciphertext.middle": lambda size: (size - TAG) // 2,
    "ciphertext.last": lambda size: size - TAG - 1,
    "tag.first": lambda size: size - TAG,
    "tag.last": lambda size: size - 1,
}
FRAME_FLIPS = [
    pytest.param(frame, region, id=f"frame{frame}.{region}")
    for frame in (0, 1, FRAME_COUNT - 1)  # first, a middle one, the last (short, final)
    for region in FRAME_REGIONS
]


@pytest.mark.parametrize(("frame", "region"), FRAME_FLIPS)
def test_a_flipped_frame_bit_fails_at_that_frame(sealed: Sealed, frame: int, region: str) -> None:
    start = HEADER_SIZE + frame * FULL
    size = FULL if frame < FRAME_COUNT - 1 else FINAL_PLAINTEXT + TAG
    blob = bytearray(sealed.blob)
    blob[start + FRAME_REGIONS[region](size)] ^= 0x01
    assert_fails_after(bytes(blob), sealed, good_frames=frame)


# --- truncation and extension ----------------------------------------------------------------

END = HEADER_SIZE + 3 * FULL + FINAL_PLAINTEXT + TAG
TRUNCATIONS = {
    "empty": 0,
    "header-only": HEADER_SIZE,
    "after-frame0": HEADER_SIZE + FULL,
    "after-frame1": HEADER_SIZE + 2 * FULL,
    "final-frame-dropped": HEADER_SIZE + 3 * FULL,
    "inside-frame0": HEADER_SIZE + 1,
    "inside-frame1-middle": HEADER_SIZE + FULL + FULL // 2,
    "inside-frame2-tag": HEADER_SIZE + 3 * FULL - 1,
    "inside-final-frame": HEADER_SIZE + 3 * FULL + 10,
    "final-frame-tag-only": HEADER_SIZE + 3 * FULL + TAG,
    "last-byte-dropped": END - 1,
}


@pytest.mark.parametrize("length", TRUNCATIONS.values(), ids=TRUNCATIONS.keys())
def test_truncation_fails_after_the_frames_that_are_whole(sealed: Sealed, length: int) -> None:
    assert len(sealed.blob) == END
    whole_full_frames = max(0, length - HEADER_SIZE) // FULL
    assert_fails_after(sealed.blob[:length], sealed, good_frames=min(whole_full_frames, 3))


def test_truncation_inside_the_header_fails_at_every_length(sealed: Sealed) -> None:
    for length in range(HEADER_SIZE):
        assert decrypt_until_failure([sealed.blob[:length]], **sealed.expected) == []
        assert decrypt_until_failure(chunked(sealed.blob[:length], 7), **sealed.expected) == []


def test_truncation_at_every_frame_boundary(sealed: Sealed) -> None:
    for frames in range(FRAME_COUNT):
        yielded = decrypt_until_failure(
            [sealed.blob[: HEADER_SIZE + frames * FULL]], **sealed.expected
        )
        assert yielded == sealed.plaintext_frames(frames)


@pytest.mark.parametrize(
    "extra",
    [b"\x00", b"\x00" * TAG, os.urandom(FULL), os.urandom(FULL + 1)],
    ids=["one-byte", "tag-sized", "frame-sized", "frame-and-a-byte"],
)
def test_bytes_after_the_final_frame_fail(sealed: Sealed, extra: bytes) -> None:
    assert_fails_after(sealed.blob + extra, sealed, good_frames=3)


def test_a_copied_frame_after_the_final_frame_fails(sealed: Sealed) -> None:
    for copied in (sealed.frame(1), sealed.frame(FRAME_COUNT - 1)):
        assert_fails_after(sealed.blob + copied, sealed, good_frames=3)


def frame_key(sealed: Sealed) -> tuple[bytes, bytes, bytes]:
    """(frame key, nonce prefix, header hash), recomputed from the spec by a key holder."""
    header = sealed.blob[:HEADER_SIZE]
    dek = aes_key_unwrap(sealed.case_key, header[42:82])
    info = b"medvault/v1" + sealed.object_id.bytes + sealed.key_id.bytes
    okm = hkdf_sha256(dek, header[82:90], info, 64)
    return okm[:32], header[82:90], hashlib.sha256(header).digest()


def forge_frame(sealed: Sealed, index: int, plaintext: bytes, *, final: bool) -> bytes:
    key, prefix, header_hash = frame_key(sealed)
    nonce = prefix + struct.pack(">I", index)
    aad = header_hash + struct.pack(">QB", index, 1 if final else 0)
    return aes_gcm_encrypt(key, nonce, plaintext, aad)


def test_a_forged_frame_under_the_right_key_is_taken_as_the_control(sealed: Sealed) -> None:
    """The forging helper is right: it reproduces a real frame exactly."""
    assert forge_frame(sealed, 1, sealed.plaintext[FS : 2 * FS], final=False) == sealed.frame(1)


def test_final_flag_and_length_must_agree(sealed: Sealed) -> None:
    """The last frame must be short and flagged final; a reader trusts neither alone."""
    body_to_frame3 = sealed.blob[: HEADER_SIZE + 3 * FULL]
    tail = sealed.plaintext[3 * FS :]
    # a short last frame that is authentic but not flagged final
    not_final = forge_frame(sealed, 3, tail, final=False)
    assert_fails_after(body_to_frame3 + not_final, sealed, good_frames=3)
    # a full frame flagged final, placed last (the object then ends on a full frame)
    full_final = forge_frame(sealed, 2, sealed.plaintext[2 * FS : 3 * FS], final=True)
    assert_fails_after(sealed.blob[: HEADER_SIZE + 2 * FULL] + full_final, sealed, good_frames=2)
    # an authentic final frame with a frame appended after it, also authentic
    extra = forge_frame(sealed, 4, b"more", final=True)
    assert_fails_after(sealed.blob + extra, sealed, good_frames=3)


# --- reordering and splicing ------------------------------------------------------------------


def swapped(sealed: Sealed, first: int, second: int) -> bytes:
    frames = [sealed.frame(i) for i in range(FRAME_COUNT)]
    frames[first], frames[second] = frames[second], frames[first]
    return sealed.blob[:HEADER_SIZE] + b"".join(frames)


@pytest.mark.parametrize(("first", "second"), [(0, 1), (1, 2), (0, 2), (2, 3)])
def test_swapped_frames_fail_at_the_first_one_out_of_place(
    sealed: Sealed, first: int, second: int
) -> None:
    assert_fails_after(swapped(sealed, first, second), sealed, good_frames=first)


def test_a_repeated_frame_fails(sealed: Sealed) -> None:
    repeated = (
        sealed.blob[: HEADER_SIZE + 2 * FULL]
        + sealed.frame(1)
        + sealed.blob[-(FINAL_PLAINTEXT + TAG) :]
    )
    assert_fails_after(repeated, sealed, good_frames=2)


def test_header_of_another_object_fails(sealed: Sealed, sibling: Sealed) -> None:
    spliced = sibling.blob[:HEADER_SIZE] + sealed.blob[HEADER_SIZE:]
    # read as the expected document: the header names another object
    assert_fails_after(spliced, sealed, good_frames=0)
    # read as the other document: its header passes, our frames do not
    assert_fails_after(spliced, sealed, good_frames=0, **sibling.expected)


def test_frames_of_another_object_after_this_header_fail(sealed: Sealed, sibling: Sealed) -> None:
    spliced = sealed.blob[:HEADER_SIZE] + sibling.blob[HEADER_SIZE:]
    assert_fails_after(spliced, sealed, good_frames=0)
    # one foreign frame in the middle: the frames before it are still delivered, nothing after
    mixed = (
        sealed.blob[: HEADER_SIZE + FULL] + sibling.frame(1) + sealed.blob[HEADER_SIZE + 2 * FULL :]
    )
    assert_fails_after(mixed, sealed, good_frames=1)


def test_object_id_or_key_id_other_than_expected_fails(sealed: Sealed) -> None:
    assert_fails_after(
        sealed.blob, sealed, good_frames=0, **{**sealed.expected, "object_id": uuid.uuid4()}
    )
    assert_fails_after(
        sealed.blob, sealed, good_frames=0, **{**sealed.expected, "key_id": uuid.uuid4()}
    )


def test_wrong_case_key_fails(sealed: Sealed) -> None:
    assert_fails_after(
        sealed.blob, sealed, good_frames=0, **{**sealed.expected, "case_key": os.urandom(32)}
    )


def test_object_of_another_case_fails(sealed: Sealed) -> None:
    """A document moved between cases: other case key and key id."""
    other_case = seal(
        sealed.plaintext, case_key=os.urandom(32), key_id=uuid.uuid4(), object_id=sealed.object_id
    )
    assert_fails_after(other_case.blob, sealed, good_frames=0)
    spliced = other_case.blob[:HEADER_SIZE] + sealed.blob[HEADER_SIZE:]
    assert_fails_after(spliced, sealed, good_frames=0, **other_case.expected)


def test_header_rewritten_to_claim_another_object_fails(sealed: Sealed, sibling: Sealed) -> None:
    """Changing the object id in the header to the expected one breaks the key commitment."""
    relabelled = bytearray(sealed.blob)
    relabelled[10:26] = sibling.object_id.bytes
    assert_fails_after(bytes(relabelled), sealed, good_frames=0, **sibling.expected)


# --- checks that overlap: each one must hold on its own -------------------------------------------
# The ids are in the key derivation and every byte of the header is in every frame's AAD, so most
# header damage fails more than one check. A key holder who rebuilds a consistent object around
# one bad field shows that each check is really made.


def build_object(
    sealed: Sealed,
    *,
    header_object_id: uuid.UUID | None = None,
    commitment: bytes | None = None,
) -> bytes:
    """Re-seal ``sealed``'s plaintext from the spec with its DEK, optionally lying in one field."""
    header = sealed.blob[:HEADER_SIZE]
    dek = aes_key_unwrap(sealed.case_key, header[42:82])
    prefix = header[82:90]
    info = b"medvault/v1" + sealed.object_id.bytes + sealed.key_id.bytes
    okm = hkdf_sha256(dek, prefix, info, 64)
    new_header = (
        header[:10]
        + (header_object_id or sealed.object_id).bytes
        + header[26:90]
        + (commitment if commitment is not None else okm[32:])
    )
    header_hash = hashlib.sha256(new_header).digest()
    frames = []
    for index in range(FRAME_COUNT):
        final = index == FRAME_COUNT - 1
        nonce = prefix + struct.pack(">I", index)
        aad = header_hash + struct.pack(">QB", index, 1 if final else 0)
        frames.append(
            aes_gcm_encrypt(okm[:32], nonce, sealed.plaintext[index * FS : (index + 1) * FS], aad)
        )
    return new_header + b"".join(frames)


def test_rebuilt_object_is_the_control(sealed: Sealed) -> None:
    assert build_object(sealed) == sealed.blob


def test_key_commitment_is_checked_before_any_frame(sealed: Sealed) -> None:
    forged = build_object(sealed, commitment=os.urandom(32))
    assert_fails_after(forged, sealed, good_frames=0)


def test_header_ids_are_checked_against_the_expected_ones(sealed: Sealed) -> None:
    forged = build_object(sealed, header_object_id=uuid.uuid4())
    assert_fails_after(forged, sealed, good_frames=0)
