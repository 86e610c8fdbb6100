"""The envelope format: round trips, the written-down layout, API misuse, streaming behaviour.

Tampering with stored envelopes is tested in test_envelope_tamper.py.
"""

import hashlib
import json
import os
import random
import struct
import tracemalloc
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from vault.crypto import envelope
from vault.crypto.envelope import (
    DEFAULT_FRAME_SIZE,
    HEADER_SIZE,
    MAX_FRAME_SIZE,
    MAX_FRAMES,
    MIN_FRAME_SIZE,
    EnvelopeEncryptor,
    EnvelopeHeader,
    ciphertext_size,
    decrypt,
    rechunk,
)
from vault.crypto.primitives import aes_gcm_decrypt, aes_key_unwrap, hkdf_sha256
from vault.errors import DecryptionFailed, DocumentTooLarge, StorageUnavailable

FS = MIN_FRAME_SIZE  # 64 KiB frames keep the tests fast
TAG = 16
MiB = 1024 * 1024
VECTOR = Path(__file__).resolve().parents[3] / "vectors" / "medvault" / "envelope_v1.json"


@pytest.fixture
def case_key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def key_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def object_id() -> uuid.UUID:
    return uuid.uuid4()


def pseudo_random(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """Cut ``data`` into chunks whose sizes cycle through ``sizes``."""
    chunks, position, turn = [], 0, 0
    while position < len(data):
        size = sizes[turn % len(sizes)]
        chunks.append(data[position : position + size])
        position += size
        turn += 1
    return chunks


def spec_decode(blob: bytes, *, case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID) -> bytes:
    """An independent reader written from the byte table in EnvelopeEncryptor's docstring."""
    header = blob[:122]
    assert header[0] == 0x01
    assert header[1:5] == b"MVLT"
    assert header[5] == 0x01
    (frame_size,) = struct.unpack(">I", header[6:10])
    assert header[10:26] == object_id.bytes
    assert header[26:42] == key_id.bytes
    dek = aes_key_unwrap(case_key, header[42:82])
    assert len(dek) == 32
    nonce_prefix = header[82:90]
    okm = hkdf_sha256(dek, nonce_prefix, b"medvault/v1" + object_id.bytes + key_id.bytes, 64)
    assert header[90:122] == okm[32:64]
    header_hash = hashlib.sha256(header).digest()
    body = blob[122:]
    full = frame_size + 16
    count = len(body) // full + 1  # a plaintext of L bytes has L // frame_size + 1 frames
    plaintext = []
    for index in range(count):
        frame = body[index * full : (index + 1) * full]
        final = index == count - 1
        nonce = nonce_prefix + struct.pack(">I", index)
        aad = header_hash + struct.pack(">Q", index) + (b"\x01" if final else b"\x00")
        plaintext.append(aes_gcm_decrypt(okm[:32], nonce, frame, aad))
    return b"".join(plaintext)


def encrypt_all(
    plaintext_chunks: Iterable[bytes],
    *,
    case_key: bytes,
    key_id: uuid.UUID,
    object_id: uuid.UUID,
    frame_size: int = FS,
) -> list[bytes]:
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=frame_size
    )
    return list(encryptor.encrypt(plaintext_chunks))


# --- round trips -------------------------------------------------------------------------------

ROUND_TRIP_SIZES = [0, 1, FS - 1, FS, FS + 1, 2 * FS, 5 * FS + 123]
CHUNKINGS = {"one-chunk": [1 << 40], "small-odd": [1000, 7, 4093], "frame-plus-one": [FS + 1]}


@pytest.mark.parametrize("size", ROUND_TRIP_SIZES)
@pytest.mark.parametrize("chunking", CHUNKINGS.values(), ids=CHUNKINGS.keys())
def test_round_trip(
    size: int, chunking: list[int], case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    plaintext = pseudo_random(size, seed=size)
    items = encrypt_all(
        cut(plaintext, chunking), case_key=case_key, key_id=key_id, object_id=object_id
    )
    blob = b"".join(items)

    # the header, then L // frame_size + 1 frames, the last one possibly just its tag
    assert len(items) == 1 + size // FS + 1
    assert [len(item) for item in items] == [HEADER_SIZE] + [FS + TAG] * (size // FS) + [
        size % FS + TAG
    ]
    assert len(blob) == ciphertext_size(size, FS)
    if size >= 64:
        assert plaintext[:64] not in blob

    frames = list(
        decrypt(cut(blob, chunking), case_key=case_key, key_id=key_id, object_id=object_id)
    )
    assert [len(frame) for frame in frames] == [FS] * (size // FS) + [size % FS]
    assert b"".join(frames) == plaintext
    assert spec_decode(blob, case_key=case_key, key_id=key_id, object_id=object_id) == plaintext


def test_round_trip_at_default_frame_size(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    assert MiB == DEFAULT_FRAME_SIZE
    plaintext = pseudo_random(2 * MiB + 5)
    encryptor = EnvelopeEncryptor(case_key=case_key, key_id=key_id, object_id=object_id)
    blob = b"".join(encryptor.encrypt(cut(plaintext, [MiB])))  # store-sized, unaligned chunks
    assert len(blob) == ciphertext_size(len(plaintext), DEFAULT_FRAME_SIZE)
    out = decrypt(cut(blob, [MiB]), case_key=case_key, key_id=key_id, object_id=object_id)
    assert b"".join(out) == plaintext


def test_accepts_bytearray_and_memoryview_chunks(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    plaintext = pseudo_random(FS + 10)
    chunks: list[bytes | bytearray | memoryview] = [
        bytearray(plaintext[:10]),
        memoryview(plaintext)[10:],
    ]
    blob = b"".join(
        EnvelopeEncryptor(
            case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
        ).encrypt(chunks)
    )
    blob_chunks: list[bytes | bytearray | memoryview] = [
        memoryview(blob)[:100],
        bytearray(blob[100:]),
    ]
    out = decrypt(blob_chunks, case_key=case_key, key_id=key_id, object_id=object_id)
    assert b"".join(out) == plaintext


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=4 * FS + 100),
    plaintext_cuts=st.lists(st.integers(min_value=1, max_value=2 * FS + 3), min_size=1, max_size=8),
    ciphertext_cuts=st.lists(
        st.integers(min_value=1, max_value=2 * FS + 3), min_size=1, max_size=8
    ),
    seed=st.integers(min_value=0, max_value=2**32),
)
@example(size=FS, plaintext_cuts=[FS], ciphertext_cuts=[HEADER_SIZE, FS + TAG], seed=1)
@example(size=3 * FS, plaintext_cuts=[1], ciphertext_cuts=[FS + TAG + HEADER_SIZE], seed=2)
def test_random_sizes_and_chunkings_round_trip(
    size: int, plaintext_cuts: list[int], ciphertext_cuts: list[int], seed: int
) -> None:
    case_key, key_id, object_id = os.urandom(32), uuid.uuid4(), uuid.uuid4()
    plaintext = pseudo_random(size, seed)
    # a one-byte cut of several frames would be slow: scale tiny cuts up when the input is large
    plaintext_cuts = [max(c, size // 64) for c in plaintext_cuts]
    blob = b"".join(
        encrypt_all(
            cut(plaintext, plaintext_cuts), case_key=case_key, key_id=key_id, object_id=object_id
        )
    )
    assert len(blob) == ciphertext_size(size, FS)
    frames = decrypt(
        cut(blob, ciphertext_cuts), case_key=case_key, key_id=key_id, object_id=object_id
    )
    assert b"".join(frames) == plaintext


@pytest.mark.slow
def test_300_mib_streaming_round_trip(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    """300 MiB through encrypt and decrypt as one pipeline, never holding more than a few MiB."""
    total = 300 * MiB
    source_rng = random.Random(300)
    source_hash, output_hash = hashlib.sha256(), hashlib.sha256()

    def source() -> Iterator[bytes]:
        sizes = [MiB - 3, 3 * MiB + 11, 65_537]  # never aligned with the 1 MiB frames
        sent, turn = 0, 0
        while sent < total:
            chunk = source_rng.randbytes(min(sizes[turn % 3], total - sent))
            source_hash.update(chunk)
            sent += len(chunk)
            turn += 1
            yield chunk

    encryptor = EnvelopeEncryptor(case_key=case_key, key_id=key_id, object_id=object_id)
    stored = rechunk(encryptor.encrypt(source()), MiB)  # the blob store's 1 MiB chunks
    received = 0
    for frame in decrypt(stored, case_key=case_key, key_id=key_id, object_id=object_id):
        output_hash.update(frame)
        received += len(frame)
    assert received == total
    assert output_hash.digest() == source_hash.digest()


# --- the written-down format ------------------------------------------------------------------


def test_frozen_vector_is_reproduced_and_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Envelopes written today must stay readable: fixed secrets give byte-identical output."""
    vector = json.loads(VECTOR.read_text())
    case_key = bytes.fromhex(vector["case_key"])
    key_id, object_id = uuid.UUID(vector["key_id"]), uuid.UUID(vector["object_id"])
    assert len(vector["cases"]) >= 4
    for case in vector["cases"]:
        secrets = iter([bytes.fromhex(vector["dek"]), bytes.fromhex(vector["nonce_prefix"])])
        # The encryptor's only source of randomness, replaced by the vector's fixed secrets.
        monkeypatch.setattr(envelope, "random_bytes", lambda size, s=secrets: next(s))
        plaintext = bytes(i % 251 for i in range(case["plaintext_size"]))
        blob = b"".join(
            encrypt_all(
                [plaintext],
                case_key=case_key,
                key_id=key_id,
                object_id=object_id,
                frame_size=vector["frame_size"],
            )
        )
        assert blob[:HEADER_SIZE].hex() == vector["header"]
        assert len(blob) == case["envelope_size"]
        assert hashlib.sha256(blob).hexdigest() == case["envelope_sha256"]
        if "envelope" in case:
            blob = bytes.fromhex(case["envelope"])
        read = decrypt([blob], case_key=case_key, key_id=key_id, object_id=object_id)
        assert b"".join(read) == plaintext
        assert spec_decode(blob, case_key=case_key, key_id=key_id, object_id=object_id) == plaintext


def test_header_matches_the_documented_layout(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=4 * MiB
    )
    header = encryptor.header
    assert len(header) == HEADER_SIZE == 122
    assert header[0:1] == b"\x01"
    assert header[1:5] == b"MVLT"
    assert header[5:6] == b"\x01"
    assert header[6:10] == (4 * MiB).to_bytes(4, "big")
    assert header[10:26] == object_id.bytes
    assert header[26:42] == key_id.bytes
    assert header[42:82] == encryptor.wrapped_dek
    assert len(aes_key_unwrap(case_key, encryptor.wrapped_dek)) == 32

    parsed = EnvelopeHeader.parse(header)
    assert (parsed.version, parsed.suite, parsed.frame_size) == (1, 1, 4 * MiB)
    assert (parsed.object_id, parsed.key_id) == (object_id, key_id)
    assert parsed.wrapped_dek == encryptor.wrapped_dek
    assert parsed.nonce_prefix == header[82:90]
    assert parsed.commitment == header[90:122]
    assert parsed.to_bytes() == header


def test_each_object_gets_a_fresh_data_key_and_nonce_prefix(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    plaintext = pseudo_random(1000)
    first = EnvelopeEncryptor(case_key=case_key, key_id=key_id, object_id=object_id)
    second = EnvelopeEncryptor(case_key=case_key, key_id=key_id, object_id=object_id)
    assert first.wrapped_dek != second.wrapped_dek
    assert first.header[82:90] != second.header[82:90]
    assert b"".join(first.encrypt([plaintext])) != b"".join(second.encrypt([plaintext]))


@pytest.mark.parametrize("frame_size", [MIN_FRAME_SIZE - 1, MAX_FRAME_SIZE + 1, 0, 2**32 - 1])
def test_header_parse_refuses_frame_sizes_outside_bounds(
    frame_size: int, case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    header = bytearray(
        EnvelopeEncryptor(case_key=case_key, key_id=key_id, object_id=object_id).header
    )
    header[6:10] = frame_size.to_bytes(4, "big")
    with pytest.raises(DecryptionFailed):
        EnvelopeHeader.parse(bytes(header))


@pytest.mark.parametrize("frame_size", [MIN_FRAME_SIZE, MAX_FRAME_SIZE])
def test_frame_size_bounds_are_inclusive(
    frame_size: int, case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=frame_size
    )
    assert EnvelopeHeader.parse(encryptor.header).frame_size == frame_size
    blob = b"".join(encryptor.encrypt([b"x" * 100]))
    out = decrypt([blob], case_key=case_key, key_id=key_id, object_id=object_id)
    assert b"".join(out) == b"x" * 100


@pytest.mark.parametrize("length", [0, HEADER_SIZE - 1, HEADER_SIZE + 1])
def test_header_parse_refuses_wrong_lengths(length: int) -> None:
    with pytest.raises(DecryptionFailed):
        EnvelopeHeader.parse(b"\x01MVLT\x01" + b"\x00" * (length - 6) if length > 6 else b"")


def test_header_refuses_fields_of_the_wrong_length() -> None:
    fields = {
        "version": 1,
        "suite": 1,
        "frame_size": FS,
        "object_id": uuid.uuid4(),
        "key_id": uuid.uuid4(),
        "wrapped_dek": b"w" * 40,
        "nonce_prefix": b"n" * 8,
        "commitment": b"c" * 32,
    }
    assert len(EnvelopeHeader(**fields).to_bytes()) == HEADER_SIZE  # type: ignore[arg-type]
    for name, wrong, message in [
        ("wrapped_dek", b"w" * 32, "wrapped data key"),
        ("nonce_prefix", b"n" * 12, "nonce prefix"),
        ("commitment", b"", "key commitment"),
    ]:
        with pytest.raises(ValueError, match=message):
            EnvelopeHeader(**{**fields, name: wrong})  # type: ignore[arg-type]


# --- sizes -------------------------------------------------------------------------------------


def test_ciphertext_size() -> None:
    assert ciphertext_size(0, FS) == 122 + 16
    assert ciphertext_size(1, FS) == 122 + 1 + 16
    assert ciphertext_size(FS - 1, FS) == 122 + FS - 1 + 16
    assert ciphertext_size(FS, FS) == 122 + FS + 2 * 16
    assert ciphertext_size(10 * MiB, MiB) == 122 + 10 * MiB + 11 * 16
    with pytest.raises(ValueError, match="negative"):
        ciphertext_size(-1, FS)
    with pytest.raises(ValueError, match="frame_size"):
        ciphertext_size(10, FS - 1)


# --- misuse of the API -------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_case_key_of_the_wrong_length_is_refused(
    length: int, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        EnvelopeEncryptor(case_key=b"k" * length, key_id=key_id, object_id=object_id)
    pulled: list[bytes] = []

    def source() -> Iterator[bytes]:
        pulled.append(b"")
        yield b"\x01MVLT"

    # refused when called, before a byte of the stream is read
    with pytest.raises(ValueError, match="32 bytes"):
        decrypt(source(), case_key=b"k" * length, key_id=key_id, object_id=object_id)
    assert pulled == []


@pytest.mark.parametrize("frame_size", [0, MIN_FRAME_SIZE - 1, MAX_FRAME_SIZE + 1])
def test_frame_size_outside_bounds_is_refused(
    frame_size: int, case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    with pytest.raises(ValueError, match="frame_size"):
        EnvelopeEncryptor(
            case_key=case_key, key_id=key_id, object_id=object_id, frame_size=frame_size
        )


def test_encrypt_frame_builds_the_same_format_as_encrypt(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    plaintext = pseudo_random(2 * FS + 5)
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
    )
    view = memoryview(plaintext)
    parts = [
        encryptor.header,
        encryptor.encrypt_frame(view[:FS], final=False),
        encryptor.encrypt_frame(view[FS : 2 * FS], final=False),
        encryptor.encrypt_frame(view[2 * FS :], final=True),
    ]
    blob = b"".join(parts)
    assert spec_decode(blob, case_key=case_key, key_id=key_id, object_id=object_id) == plaintext
    out = decrypt([blob], case_key=case_key, key_id=key_id, object_id=object_id)
    assert b"".join(out) == plaintext


def test_encrypt_frame_refuses_wrong_sizes_without_consuming_a_frame(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
    )
    full, short = b"a" * FS, b"b" * 10
    for wrong in [b"", b"a" * (FS - 1), b"a" * (FS + 1)]:
        with pytest.raises(ValueError, match="exactly frame_size"):
            encryptor.encrypt_frame(wrong, final=False)
    for wrong in [b"a" * FS, b"a" * (FS + 1)]:
        with pytest.raises(ValueError, match="fewer than frame_size"):
            encryptor.encrypt_frame(wrong, final=True)
    # the refused calls left no trace: these are frames 0 and 1
    blob = encryptor.header + encryptor.encrypt_frame(full, final=False)
    blob += encryptor.encrypt_frame(short, final=True)
    out = decrypt([blob], case_key=case_key, key_id=key_id, object_id=object_id)
    assert b"".join(out) == full + short
    with pytest.raises(ValueError, match="already"):
        encryptor.encrypt_frame(b"", final=True)
    with pytest.raises(ValueError, match="already"):
        list(encryptor.encrypt([b"more"]))


def test_encrypt_refuses_an_encryptor_that_already_wrote_frames(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
    )
    encryptor.encrypt_frame(b"a" * FS, final=False)
    with pytest.raises(ValueError, match="already"):
        list(encryptor.encrypt([b"more"]))


def test_refuses_more_than_2_to_the_32_frames(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
    )
    # Writing 2**32 real frames takes 256 TiB: start the counter at the last allowed index.
    encryptor._next_index = MAX_FRAMES - 1  # white-box: the counter limit
    with pytest.raises(DocumentTooLarge):
        encryptor.encrypt_frame(b"a" * FS, final=False)  # would need frame number 2**32 + 1
    assert len(encryptor.encrypt_frame(b"end", final=True)) == 3 + TAG  # frame 2**32 - 1: last

    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
    )
    encryptor._next_index = MAX_FRAMES
    with pytest.raises(DocumentTooLarge):
        encryptor.encrypt_frame(b"", final=True)


def test_repr_shows_no_key_material(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    encryptor = EnvelopeEncryptor(case_key=case_key, key_id=key_id, object_id=object_id)
    text = repr(encryptor) + repr(encryptor._frames._aead)
    assert "redacted" in text
    assert case_key.hex() not in text
    assert repr(case_key) not in text


# --- rechunk -----------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=300), max_size=20),
    size=st.integers(min_value=1, max_value=257),
)
def test_rechunk_cuts_exact_pieces(chunks: list[bytes], size: int) -> None:
    pieces = list(rechunk(chunks, size))
    assert b"".join(pieces) == b"".join(chunks)
    assert all(type(piece) is bytes for piece in pieces)
    assert all(len(piece) == size for piece in pieces[:-1])
    assert all(0 < len(piece) <= size for piece in pieces[-1:])


def test_rechunk_refuses_a_size_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        list(rechunk([b"abc"], 0))


# --- streaming ---------------------------------------------------------------------------------


class CountingSource:
    """A chunk stream that records how many bytes the consumer has pulled so far."""

    def __init__(self, data: bytes, chunk_size: int) -> None:
        self.data, self.chunk_size, self.pulled = data, chunk_size, 0

    def __iter__(self) -> Iterator[bytes]:
        for position in range(0, len(self.data), self.chunk_size):
            chunk = self.data[position : position + self.chunk_size]
            self.pulled += len(chunk)
            yield chunk


def test_encrypt_and_decrypt_pull_their_input_lazily(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    plaintext = pseudo_random(20 * FS + 7)
    source = CountingSource(plaintext, 10_000)
    items = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
    ).encrypt(source)
    assert len(next(items)) == HEADER_SIZE
    assert source.pulled == 0
    assert len(next(items)) == FS + TAG
    assert source.pulled < FS + 10_000

    stored = b"".join(
        encrypt_all([plaintext], case_key=case_key, key_id=key_id, object_id=object_id)
    )
    source = CountingSource(stored, 10_000)
    frames = decrypt(source, case_key=case_key, key_id=key_id, object_id=object_id)
    assert source.pulled == 0
    assert next(frames) == plaintext[:FS]
    assert source.pulled < HEADER_SIZE + FS + TAG + 10_000
    assert next(frames) == plaintext[FS : 2 * FS]
    assert source.pulled < HEADER_SIZE + 2 * (FS + TAG) + 10_000


def test_memory_stays_bounded_by_a_few_frames(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    """64 MiB through encrypt and decrypt with 1 MiB frames, traced: a few MiB at most."""
    total = 64 * MiB
    rng = random.Random(64)

    def source() -> Iterator[bytes]:
        for _ in range(total // (MiB // 2)):
            yield rng.randbytes(MiB // 2)

    tracemalloc.start()
    try:
        encryptor = EnvelopeEncryptor(case_key=case_key, key_id=key_id, object_id=object_id)
        stored = rechunk(encryptor.encrypt(source()), MiB - 5)
        received = sum(
            len(frame)
            for frame in decrypt(stored, case_key=case_key, key_id=key_id, object_id=object_id)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == total
    assert peak < 12 * MiB  # holding the stream would take > 128 MiB


def test_a_failing_source_propagates_its_own_error(
    case_key: bytes, key_id: uuid.UUID, object_id: uuid.UUID
) -> None:
    """A storage outage mid-stream stays retryable: it is not turned into DecryptionFailed."""
    plaintext = pseudo_random(3 * FS)
    blob = b"".join(encrypt_all([plaintext], case_key=case_key, key_id=key_id, object_id=object_id))

    def broken(data: bytes, after: int) -> Iterator[bytes]:
        yield data[:after]
        raise StorageUnavailable("the object store went away")

    frames = decrypt(
        broken(blob, HEADER_SIZE + FS + TAG + 5),
        case_key=case_key,
        key_id=key_id,
        object_id=object_id,
    )
    assert next(frames) == plaintext[:FS]
    with pytest.raises(StorageUnavailable):
        next(frames)

    encryptor = EnvelopeEncryptor(
        case_key=case_key, key_id=key_id, object_id=object_id, frame_size=FS
    )
    with pytest.raises(StorageUnavailable):
        list(encryptor.encrypt(broken(plaintext, FS + 5)))
