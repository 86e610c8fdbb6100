"""What the envelope decoder may do with one fuzz input, and what is a failure.

Used by :mod:`tests.atheris.envelope_target` (with ``vault`` instrumented) and by
``test_oracles.py`` (which shows that each check fails when it should). Failures are exceptions
that escape: libFuzzer saves the input as a crash.

- Any exception but ``DecryptionFailed``, or a ``DecryptionFailed`` that carries detail (a
  message of its own, a cause, a context shown).
- An accepted forgery: ``decrypt`` running to its end on bytes that are not exactly a genuine
  envelope of the object and key asked for, or yielding plaintext other than that envelope's. A
  truncated, extended, reordered or spliced envelope is a forgery as much as a made-up one.
- A frame yielded before a failure that is not the genuine plaintext at that place, behind bytes
  equal to the genuine envelope up to that frame (``decrypt`` documents that everything it
  yields was verified).
- A header that ``EnvelopeHeader.parse`` accepts but that does not write back to the same bytes,
  or whose version, suite or frame size the format does not allow.
"""

from __future__ import annotations

from tests.atheris import envelope_corpus as corpus
from vault.crypto.envelope import (
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME_SIZE,
    MIN_FRAME_SIZE,
    SUITE_AES256GCM_HKDF_SHA256_AESKW,
    VERSION,
    EnvelopeHeader,
    decrypt,
)
from vault.errors import DecryptionFailed

# How far a decryption got, from refused at the header to accepted.
PROGRESS = ("foreign-header", "no-frame", "one-frame", "more-frames", "accepted")


class AcceptedForgery(AssertionError):
    """``decrypt`` accepted bytes that no holder of the case key wrote."""


def check_decrypt(body: bytes, plan: corpus.Plan) -> str:
    """Decrypt ``body`` as the plan says and judge the result; returns the progress made."""
    expected = plan.expectation
    yielded: list[bytes] = []
    try:
        for frame in decrypt(
            corpus.CHUNKINGS[plan.chunking](body),
            case_key=expected.case_key,
            key_id=expected.key_id,
            object_id=expected.object_id,
        ):
            yielded.append(bytes(frame))
    except DecryptionFailed as error:
        require_opaque(error)
        require_verified_prefix(body, yielded, expected)
        if not any(body[:HEADER_SIZE] == genuine.header for genuine in _same_ids(expected)):
            return "foreign-header"
        return PROGRESS[1 + min(len(yielded), 2)]
    require_genuine(body, yielded, expected)
    return "accepted"


def require_opaque(error: DecryptionFailed) -> None:
    shown_context = error.__context__ is not None and not error.__suppress_context__
    if (
        type(error) is not DecryptionFailed
        or str(error) != "decryption failed"
        or error.__cause__ is not None
        or shown_context
    ):
        raise AssertionError(f"DecryptionFailed is not opaque: {type(error).__name__}")


def _genuine_of(expected: corpus.Expectation) -> list[corpus.Genuine]:
    return [genuine for genuine in corpus.genuine_envelopes() if genuine.expectation is expected]


def _same_ids(expected: corpus.Expectation) -> list[corpus.Genuine]:
    """Genuine envelopes of the expected object and key id (under whichever case key)."""
    return [
        genuine
        for genuine in corpus.genuine_envelopes()
        if (genuine.expectation.object_id, genuine.expectation.key_id)
        == (expected.object_id, expected.key_id)
    ]


def require_verified_prefix(
    body: bytes, yielded: list[bytes], expected: corpus.Expectation
) -> None:
    """Frames yielded before a failure are a genuine envelope's first frames, read from bytes
    equal to that envelope up to the end of the last frame yielded."""
    if not yielded:
        return
    frames = len(yielded)
    for genuine in _genuine_of(expected):
        end = genuine.frame_end(frames)
        if (
            body[:end] == genuine.blob[:end]
            and b"".join(yielded) == genuine.plaintext[: genuine.plaintext_end(frames)]
        ):
            return
    raise AcceptedForgery(f"{frames} frame(s) yielded that no genuine envelope holds there")


def require_genuine(body: bytes, yielded: list[bytes], expected: corpus.Expectation) -> None:
    """A decryption that ran to its end read exactly a genuine envelope of the expected object
    and yielded exactly its plaintext, one item per frame."""
    for genuine in _genuine_of(expected):
        if body == genuine.blob:
            if b"".join(yielded) != genuine.plaintext:
                raise AcceptedForgery("a genuine envelope decrypted to other plaintext")
            if len(yielded) != len(genuine.plaintext) // genuine.frame_size + 1:
                raise AcceptedForgery("a genuine envelope decrypted in another number of frames")
            return
    raise AcceptedForgery(
        f"decrypt accepted {len(body)} bytes that are not a genuine envelope of object "
        f"{expected.name!r} ({len(yielded)} frame(s) yielded)"
    )


def check_header(data: bytes, *, as_view: bool) -> bool:
    """Parse ``data`` as a header and judge the result; returns whether it was accepted."""
    try:
        header = EnvelopeHeader.parse(memoryview(bytearray(data)) if as_view else data)
    except DecryptionFailed as error:
        require_opaque(error)
        return False
    if header.to_bytes() != data:
        raise AssertionError("a parsed header does not write back to the same bytes")
    if (
        header.version != VERSION
        or data[1:5] != MAGIC
        or header.suite != SUITE_AES256GCM_HKDF_SHA256_AESKW
        or not MIN_FRAME_SIZE <= header.frame_size <= MAX_FRAME_SIZE
    ):
        raise AssertionError("EnvelopeHeader.parse accepted a header the format does not allow")
    return True
