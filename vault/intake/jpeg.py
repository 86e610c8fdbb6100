"""Streaming JPEG sanitiser: keeps the image, drops metadata, never buffers the file.

A JPEG is a sequence of marker segments (``FF xx``, a 2-byte big-endian length that counts
itself, a payload) and, after each SOS segment, entropy-coded image data that runs until the
next marker other than ``FF 00`` (a stuffed FF byte) or ``FF D0``..``FF D7`` (restart markers).
The walk below passes image structure through unchanged and drops what describes the image:

- kept: SOI, JFIF APP0 (without its thumbnail), APP2 ICC_PROFILE, APP14 Adobe (colour
  transform), DQT, DHT, DAC, SOFn, DHP, EXP, DRI, DNL, SOS with its data (every scan of a
  progressive JPEG), EOI;
- dropped: APP1 EXIF (replaced by a minimal EXIF holding only the orientation, so photos still
  display upright) and XMP, APP13 IPTC/Photoshop, COM, every other APPn and reserved JPGn
  segment, and anything after EOI.

Nothing is yielded before the frame header (SOFn) has passed the pixel limit, so a refused
image never reaches the caller's encryption or storage.
"""

import struct
from collections.abc import Generator

from vault.errors import InvalidDocument
from vault.intake.document import ChangeLog
from vault.intake.limits import IntakeLimits, check_pixels
from vault.intake.reader import LimitedReader

TRUNCATED = "the JPEG file is truncated"
DAMAGED = "the JPEG file is damaged"
NO_FRAME = "the JPEG file is damaged: it has no frame header"
NO_IMAGE = "the JPEG file is damaged: it has no image data"

SOI, EOI, SOS, DHT, DAC, DQT, DNL, DRI, DHP, EXP, COM = (
    0xD8, 0xD9, 0xDA, 0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF, 0xFE,
)  # fmt: skip
APP0, APP1, APP2, APP13, APP14 = 0xE0, 0xE1, 0xE2, 0xED, 0xEE
START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {DHT, 0xC8, DAC}  # 0xC8 is reserved (JPG)
TABLES = frozenset({DQT, DHT, DAC, DRI, DNL, DHP, EXP})
RESTART = frozenset(range(0xD0, 0xD8))

# Held header segments (tables, ICC profile) before the frame header is checked; past this
# the header is passed on unchecked, which is still before any image data.
MAX_HELD_HEADER = 4 * 1024 * 1024
MAX_FILL_BYTES = 1024  # FF padding before a marker; more than this is not a real encoder

_EXIF = b"Exif\x00\x00"
_XMP_PREFIXES = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
_ICC = b"ICC_PROFILE\x00"
_ORIENTATION_TAG = 0x0112


def sanitise_jpeg(
    reader: LimitedReader, *, limits: IntakeLimits, changes: ChangeLog
) -> Generator[bytes, None, None]:
    """Yield the sanitised JPEG. ``reader`` is positioned at the SOI marker."""
    reader.truncated_message = TRUNCATED
    if reader.read_exact(2) != b"\xff\xd8":
        raise InvalidDocument(DAMAGED)
    held: list[bytes] | None = [b"\xff\xd8"]  # None once the header has been passed on
    held_size = 2
    frame_seen = scan_seen = False

    while True:
        marker = _next_marker(reader)
        if marker == EOI:
            if not frame_seen:
                raise InvalidDocument(NO_FRAME)
            if not scan_seen:
                raise InvalidDocument(NO_IMAGE)
            yield b"\xff\xd9"
            if not reader.at_end():
                changes.add("trailing-data")
            return
        if marker == SOI or marker in RESTART or marker == 0x01 or marker < 0xC0:
            raise InvalidDocument(DAMAGED)  # not valid between segments

        (length,) = struct.unpack(">H", reader.read_exact(2))
        if length < 2:
            raise InvalidDocument(DAMAGED)
        size = length - 2
        segment = _kept_segment(reader, marker, size, changes)
        if segment is None:
            continue

        if marker in START_OF_FRAME or marker == DHP:
            _check_frame(segment, limits)
            frame_seen = True
        if marker == SOS and not frame_seen:
            raise InvalidDocument(NO_FRAME)

        if held is not None:
            held.append(segment)
            held_size += len(segment)
            if frame_seen or held_size > MAX_HELD_HEADER:
                yield b"".join(held)
                held = None
        else:
            yield segment

        if marker == SOS:
            scan_seen = True
            yield from _entropy_coded_data(reader)


def _next_marker(reader: LimitedReader) -> int:
    if reader.read_exact(1) != b"\xff":
        raise InvalidDocument(DAMAGED)
    for _ in range(MAX_FILL_BYTES):
        code = reader.read_exact(1)[0]
        if code != 0xFF:
            return code
    raise InvalidDocument(DAMAGED)


def _kept_segment(
    reader: LimitedReader, marker: int, size: int, changes: ChangeLog
) -> bytes | None:
    """The whole segment to pass on (possibly rewritten), or None after skipping it."""

    def keep(payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    if marker in START_OF_FRAME or marker in TABLES or marker == SOS:
        return keep(reader.read_exact(size))
    if marker == APP1:
        head = reader.peek(min(size, 64))
        if head.startswith(_EXIF):
            changes.add("exif")
            orientation = _exif_orientation(reader.read_exact(size))
            return keep(_minimal_exif(orientation)) if orientation else None
        changes.add("xmp" if head.startswith(_XMP_PREFIXES) else "jpeg-app-segment")
        reader.skip(size)
        return None
    if marker == APP0 and reader.peek(min(size, 5)) == b"JFIF\x00" and size >= 14:
        payload = reader.read_exact(size)
        if payload[12:14] != b"\x00\x00" or size > 14:
            changes.add("jpeg-thumbnail")
        return keep(payload[:12] + b"\x00\x00")  # JFIF header without its thumbnail
    if marker == APP2 and reader.peek(min(size, len(_ICC))) == _ICC:
        return keep(reader.read_exact(size))
    if marker == APP14 and reader.peek(min(size, 5)) == b"Adobe":
        return keep(reader.read_exact(size))
    if marker == APP0:
        # JFXX (JFIF extension) segments carry only a thumbnail.
        changes.add(
            "jpeg-thumbnail" if reader.peek(min(size, 5)) == b"JFXX\x00" else "jpeg-app-segment"
        )
    elif marker == APP13:
        changes.add("iptc")
    elif marker == COM:
        changes.add("comment")
    else:  # other APPn, and the reserved JPGn extensions 0xF0..0xFD, 0xC8
        changes.add("jpeg-app-segment")
    reader.skip(size)
    return None


def _check_frame(segment: bytes, limits: IntakeLimits) -> None:
    # SOFn / DHP payload: precision (1), height (2), width (2), component count (1), ...
    if len(segment) < 4 + 6:
        raise InvalidDocument(DAMAGED)
    height, width = struct.unpack(">HH", segment[5:9])
    check_pixels(width, height, limits)


def _entropy_coded_data(reader: LimitedReader) -> Generator[bytes, None, None]:
    """Yield the scan data up to (not including) the marker that ends it."""
    while True:
        data = reader.peek_buffered()
        if not data:
            raise InvalidDocument(TRUNCATED)
        search_from = 0
        while True:
            at = data.find(b"\xff", search_from)
            if at < 0:
                reader.consume(len(data))
                yield data
                break
            if at + 1 == len(data):  # the byte that tells what this FF is has not arrived
                reader.consume(at)
                if at:
                    yield data[:at]
                if len(reader.peek(2)) < 2:
                    raise InvalidDocument(TRUNCATED)
                break
            follower = data[at + 1]
            if follower == 0x00 or follower in RESTART:
                search_from = at + 2
            elif follower == 0xFF:  # fill byte before a marker
                search_from = at + 1
            else:  # a marker: the scan ends here
                reader.consume(at)
                if at:
                    yield data[:at]
                return


def _exif_orientation(payload: bytes) -> int | None:
    """The Orientation (1..8) from an APP1 EXIF payload's first IFD, or None."""
    tiff = payload[len(_EXIF) :]
    if tiff[:4] == b"II*\x00":
        order = "<"
    elif tiff[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for index in range(count):
            tag, kind, number, value = struct.unpack_from(
                order + "HHIH", tiff, ifd + 2 + 12 * index
            )
            if tag == _ORIENTATION_TAG and kind == 3 and number == 1:
                return value if 1 <= value <= 8 else None
    except struct.error:
        return None
    return None


def _minimal_exif(orientation: int) -> bytes:
    """An APP1 EXIF payload with one IFD holding only the orientation."""
    return (
        _EXIF
        + b"MM\x00*"
        + struct.pack(">I", 8)
        + struct.pack(">H", 1)
        + struct.pack(">HHIHH", _ORIENTATION_TAG, 3, 1, orientation, 0)
        + struct.pack(">I", 0)
    )
