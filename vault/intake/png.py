"""Streaming PNG sanitiser: verifies every chunk, keeps the image, drops text and metadata.

A PNG is an 8-byte signature and chunks: length (4, big-endian, at most 2^31-1), type (4 ASCII
letters), data, CRC-32 over type and data. IHDR must come first and carries the dimensions,
which are checked against the pixel limit before anything is passed on. Chunks are streamed
in pieces (a large IDAT is never held whole) and their CRC computed as they pass.
"""

import struct
import zlib
from collections.abc import Generator

from vault.errors import InvalidDocument
from vault.intake.detect import PNG_SIGNATURE
from vault.intake.document import ChangeLog
from vault.intake.limits import IntakeLimits, check_pixels
from vault.intake.reader import LimitedReader

TRUNCATED = "the PNG file is truncated"
DAMAGED = "the PNG file is damaged"
BAD_CHECKSUM = "the PNG file is damaged: a chunk checksum does not match"
NO_IMAGE = "the PNG file is damaged: it has no image data"

KEPT_CHUNKS = frozenset(
    {
        b"IHDR", b"PLTE", b"IDAT", b"IEND",
        b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs", b"bKGD", b"hIST", b"cICP",
        b"acTL", b"fcTL", b"fdAT",  # APNG animation
    }
)  # fmt: skip
DROPPED_CODES = {
    b"tEXt": "png-text",
    b"zTXt": "png-text",
    b"iTXt": "png-text",
    b"eXIf": "exif",
    b"tIME": "png-time",
}
MAX_CHUNK_LENGTH = 2**31 - 1


def sanitise_png(
    reader: LimitedReader, *, limits: IntakeLimits, changes: ChangeLog
) -> Generator[bytes, None, None]:
    """Yield the sanitised PNG. ``reader`` is positioned at the signature."""
    reader.truncated_message = TRUNCATED
    if reader.read_exact(8) != PNG_SIGNATURE:
        raise InvalidDocument(DAMAGED)

    length, kind = _chunk_header(reader)
    if kind != b"IHDR" or length != 13:
        raise InvalidDocument(DAMAGED)
    ihdr = reader.read_exact(13)
    _verify_crc(reader, zlib.crc32(kind + ihdr))
    width, height = struct.unpack(">II", ihdr[:8])
    if width > MAX_CHUNK_LENGTH or height > MAX_CHUNK_LENGTH:
        raise InvalidDocument(DAMAGED)
    check_pixels(width, height, limits)
    yield PNG_SIGNATURE + _chunk_bytes(kind, ihdr)

    image_data_seen = False
    while True:
        length, kind = _chunk_header(reader)
        if kind == b"IHDR":
            raise InvalidDocument(DAMAGED)
        kept = kind in KEPT_CHUNKS
        if kept:
            yield struct.pack(">I", length) + kind
        crc = zlib.crc32(kind)
        remaining = length
        while remaining:
            piece = reader.read_some(min(remaining, limits.chunk_size))
            if not piece:
                raise InvalidDocument(TRUNCATED)
            crc = zlib.crc32(piece, crc)
            remaining -= len(piece)
            if kept:
                yield piece
        _verify_crc(reader, crc)
        if not kept:
            changes.add(DROPPED_CODES.get(kind, "png-unknown-chunk"))
            continue
        yield struct.pack(">I", crc)
        if kind == b"IDAT":
            image_data_seen = True
        if kind == b"IEND":
            if not image_data_seen:
                raise InvalidDocument(NO_IMAGE)
            if not reader.at_end():
                changes.add("trailing-data")
            return


def _chunk_header(reader: LimitedReader) -> tuple[int, bytes]:
    length, kind = struct.unpack(">I4s", reader.read_exact(8))
    if length > MAX_CHUNK_LENGTH or not kind.isalpha() or not kind.isascii():
        raise InvalidDocument(DAMAGED)
    return length, kind


def _verify_crc(reader: LimitedReader, crc: int) -> None:
    if struct.unpack(">I", reader.read_exact(4))[0] != crc:
        raise InvalidDocument(BAD_CHECKSUM)


def _chunk_bytes(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
