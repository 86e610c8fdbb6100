"""The genuine envelopes the envelope target knows, the way it reads one fuzz input, and its
seed corpus.

A fuzz input is one plan byte and a body. The plan chooses what is done with the body:
decrypting it as one of three expected objects (the expectations come from the plan, as they
come from the database row in the product, never from the header), decrypting it under a wrong
case key, or parsing only its header; and how the body is cut into chunks on the way in
(``decrypt`` takes chunks of any size, and the header reader and frame re-cutting have their own
paths for chunks that straddle a boundary).

The genuine envelopes are made by ``EnvelopeEncryptor`` with the smallest frame size and a fixed
data key and nonce prefix per envelope (derived from a label), so every run, the test that
writes the seeds and the target that judges them know the same set, and a regression input
found by one run means the same in the next. Their keys and plaintexts are test data.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from unittest import mock

from vault.crypto import envelope
from vault.crypto.envelope import HEADER_SIZE, MIN_FRAME_SIZE, EnvelopeEncryptor
from vault.crypto.primitives import GCM_TAG_SIZE, Buffer


def _test_bytes(label: str, size: int) -> bytes:
    """``size`` bytes that depend only on ``label`` (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass(frozen=True)
class Expectation:
    """What a caller expects when it decrypts: the case key and the ids from its row."""

    name: str
    case_key: bytes
    key_id: uuid.UUID
    object_id: uuid.UUID


CASE_KEY = _test_bytes("case key", 32)
OTHER_CASE_KEY = _test_bytes("other case key", 32)
KEY_ID = uuid.UUID(bytes=_test_bytes("key id", 16))
OTHER_KEY_ID = uuid.UUID(bytes=_test_bytes("other key id", 16))
OBJECT_A = Expectation("a", CASE_KEY, KEY_ID, uuid.UUID(bytes=_test_bytes("object a", 16)))
# Another object under the same case key: frames spliced in from it must fail.
OBJECT_B = Expectation("b", CASE_KEY, KEY_ID, uuid.UUID(bytes=_test_bytes("object b", 16)))
# The same object under another case key, as after a key rotation.
OBJECT_A_REKEYED = Expectation("a-rekeyed", OTHER_CASE_KEY, OTHER_KEY_ID, OBJECT_A.object_id)
# Object a's ids, but a case key that wrapped none of the envelopes: nothing may decrypt.
WRONG_KEY = Expectation("wrong-key", _test_bytes("wrong case key", 32), KEY_ID, OBJECT_A.object_id)
EXPECTATIONS = (OBJECT_A, OBJECT_B, OBJECT_A_REKEYED)

FS = MIN_FRAME_SIZE
# (expectation, plaintext size, frame size): empty, short, one byte either side of a frame
# boundary (a plaintext of exactly frame_size bytes ends in an empty, tag-only final frame),
# three frames, and an odd frame size.
GENUINE_SHAPES = (
    (OBJECT_A, 0, FS),
    (OBJECT_A, 1, FS),
    (OBJECT_A, 1000, FS),
    (OBJECT_A, FS - 1, FS),
    (OBJECT_A, FS, FS),
    (OBJECT_A, FS + 1, FS),
    (OBJECT_A, 2 * FS + 7, FS),
    (OBJECT_A, FS + 20, FS + 13),
    (OBJECT_B, 1000, FS),
    (OBJECT_B, FS + 1, FS),
    (OBJECT_A_REKEYED, FS + 1, FS),
)


@dataclass(frozen=True)
class Genuine:
    """One envelope made by the product's encryptor, and what it holds."""

    expectation: Expectation
    blob: bytes
    plaintext: bytes
    frame_size: int

    @property
    def header(self) -> bytes:
        return self.blob[:HEADER_SIZE]

    def frame_end(self, frames: int) -> int:
        """Where the first ``frames`` frames end in the blob."""
        return min(len(self.blob), HEADER_SIZE + frames * (self.frame_size + GCM_TAG_SIZE))

    def plaintext_end(self, frames: int) -> int:
        return min(len(self.plaintext), frames * self.frame_size)


def _seal(expectation: Expectation, size: int, frame_size: int) -> Genuine:
    label = f"{expectation.name}/{size}/{frame_size}"
    plaintext = _test_bytes(f"plaintext {label}", size)
    randomness = iter((_test_bytes(f"dek {label}", 32), _test_bytes(f"nonce prefix {label}", 8)))

    def fixed_random_bytes(count: int) -> bytes:
        value = next(randomness)
        assert len(value) == count, "EnvelopeEncryptor asked for other random bytes than before"
        return value

    # The encryptor takes its data key and nonce prefix from the CSPRNG; fixing them here is
    # what makes the genuine set the same in every process.
    with mock.patch.object(envelope, "random_bytes", fixed_random_bytes):
        encryptor = EnvelopeEncryptor(
            case_key=expectation.case_key,
            key_id=expectation.key_id,
            object_id=expectation.object_id,
            frame_size=frame_size,
        )
    blob = b"".join(encryptor.encrypt([plaintext]))
    return Genuine(expectation, blob, plaintext, frame_size)


@cache
def genuine_envelopes() -> tuple[Genuine, ...]:
    return tuple(_seal(*shape) for shape in GENUINE_SHAPES)


def _whole(body: bytes) -> Iterator[Buffer]:
    yield body


def _header_byte_by_byte(body: bytes) -> Iterator[Buffer]:
    limit = min(len(body), HEADER_SIZE + 8)
    for at in range(limit):
        yield body[at : at + 1]
    yield body[limit:]


def _pieces(sizes: tuple[int, ...], rest: int) -> Callable[[bytes], Iterator[Buffer]]:
    """Chunks of the given sizes in turn, then of ``rest`` bytes."""

    def cut(body: bytes) -> Iterator[Buffer]:
        view, at = memoryview(body), 0
        for size in sizes:
            yield view[at : at + size]
            at += size
        while at < len(body):
            yield view[at : at + rest]
            at += rest

    return cut


def _frame_aligned(body: bytes) -> Iterator[Buffer]:
    """The header, then chunks of exactly one full frame of the smallest frame size."""
    yield body[:HEADER_SIZE]
    for at in range(HEADER_SIZE, len(body), FS + GCM_TAG_SIZE):
        yield body[at : at + FS + GCM_TAG_SIZE]


def _with_empty_chunks(body: bytes) -> Iterator[Buffer]:
    """An empty chunk before each piece, the pieces in mutable buffers (bytearray, memoryview)."""
    for number, at in enumerate(range(0, len(body), 4093)):
        piece = body[at : at + 4093]
        yield b""
        yield bytearray(piece) if number % 2 else memoryview(bytearray(piece))
    yield b""


# Indexed by plan bits 2..4. The small sizes straddle the header's end and frame boundaries.
CHUNKINGS: tuple[Callable[[bytes], Iterator[Buffer]], ...] = (
    _whole,
    _header_byte_by_byte,
    _pieces((7,) * 40, 4093),
    _pieces((), 4096),
    _frame_aligned,
    _pieces((HEADER_SIZE - 1, 2), FS - 1),
    _with_empty_chunks,
    _pieces((HEADER_SIZE + FS + GCM_TAG_SIZE + 1,), FS + GCM_TAG_SIZE),
)

DECRYPT, WRONG_KEY_DECRYPT, HEADER_ONLY = "decrypt", "wrong-key", "header"


@dataclass(frozen=True)
class Plan:
    action: str
    expectation: Expectation
    chunking: int


def read_plan(plan: int) -> Plan:
    """Bits 0-1: expected object (0 and 1: a, 2: b, 3: a re-keyed); bits 2-4: chunking;
    bits 5-7: action (6: header only, 7: wrong case key, else decrypt)."""
    expectation = EXPECTATIONS[max(0, (plan & 3) - 1)]
    action = {6: HEADER_ONLY, 7: WRONG_KEY_DECRYPT}.get(plan >> 5, DECRYPT)
    return Plan(action, WRONG_KEY if action == WRONG_KEY_DECRYPT else expectation, (plan >> 2) & 7)


def plan_byte(expectation: Expectation, *, chunking: int = 0, action: int = 0) -> int:
    return (action << 5) | (chunking << 2) | (EXPECTATIONS.index(expectation) + 1)


def seeds() -> dict[str, bytes]:
    """Each genuine envelope, decrypted as its own object (under a few chunkings), as another
    object, and its header alone; plus truncations at a frame boundary and a wrong case key,
    which must fail."""
    found: dict[str, bytes] = {}
    for number, genuine in enumerate(genuine_envelopes()):
        own = genuine.expectation
        other = OBJECT_B if own is OBJECT_A else OBJECT_A
        for chunking in (0, number % len(CHUNKINGS)):
            found[f"genuine-{number}-chunking-{chunking}"] = (
                bytes([plan_byte(own, chunking=chunking)]) + genuine.blob
            )
        found[f"genuine-{number}-as-other"] = bytes([plan_byte(other)]) + genuine.blob
        found[f"genuine-{number}-header"] = bytes([plan_byte(own, action=6)]) + genuine.header
        if number == 0:
            found["genuine-0-wrong-key"] = bytes([plan_byte(own, action=7)]) + genuine.blob
        if len(genuine.plaintext) >= genuine.frame_size:
            found[f"genuine-{number}-cut-after-frame"] = (
                bytes([plan_byte(own)]) + genuine.blob[: genuine.frame_end(1)]
            )
    return found
