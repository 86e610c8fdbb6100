"""TIFF sanitiser: edits a spooled TIFF in place so only image structure remains.

Classic TIFF layout (both byte orders, ``II`` little-endian / ``MM`` big-endian)::

    offset 0  byte order "II" or "MM"
           2  42 (16-bit)
           4  offset of the first IFD (32-bit)
    IFD:      entry count n (16-bit), n entries of 12 bytes, offset of the next IFD (0 = none)
    entry:    tag (16), type (16), count (32), value if it fits in 4 bytes else its offset (32)

IFDs may sit anywhere, also after the image data, so the upload is spooled first. Every IFD
of the chain (loops and offsets outside the file refused) has its dimensions checked against
the pixel limit and keeps only the tags in ``KEPT_TAGS``: the kept entries are moved up, the
count updated and the next-IFD offset written after them; the IFD stays where it was so no
offset elsewhere changes. Then every byte that no kept structure references (the values of
removed entries, the EXIF, GPS and Interop IFDs they pointed to, stale entry slots, anything
hidden between the pieces) is overwritten with zeros, and bytes after the last referenced one
are cut off. A file with nothing to remove is left byte for byte as it was.
"""

import struct
from dataclasses import dataclass
from typing import IO

from vault.errors import InvalidDocument
from vault.intake.document import ChangeLog
from vault.intake.limits import IntakeLimits, check_pixels

TRUNCATED = "the TIFF file is truncated"
DAMAGED = "the TIFF file is damaged"
TOO_MANY_PAGES = "the TIFF file has too many pages"
TOO_MANY_STRIPS = "the TIFF file has too many strips or tiles"

MAX_PAGES = 10_000
MAX_DATA_BLOCKS = 1_000_000  # strips and tiles over the whole file

IMAGE_WIDTH, IMAGE_LENGTH = 256, 257
STRIP_OFFSETS, STRIP_BYTE_COUNTS = 273, 279
TILE_OFFSETS, TILE_BYTE_COUNTS = 324, 325
EXIF_IFD, GPS_IFD, INTEROP_IFD = 34665, 34853, 40965

KEPT_TAGS = {  # tag: name. Everything else is removed.
    254: "NewSubfileType",
    256: "ImageWidth",
    257: "ImageLength",
    258: "BitsPerSample",
    259: "Compression",
    262: "PhotometricInterpretation",
    266: "FillOrder",
    273: "StripOffsets",
    274: "Orientation",
    277: "SamplesPerPixel",
    278: "RowsPerStrip",
    279: "StripByteCounts",
    282: "XResolution",
    283: "YResolution",
    284: "PlanarConfiguration",
    292: "T4Options",
    293: "T6Options",
    296: "ResolutionUnit",
    297: "PageNumber",
    301: "TransferFunction",
    317: "Predictor",
    318: "WhitePoint",
    319: "PrimaryChromaticities",
    320: "ColorMap",
    322: "TileWidth",
    323: "TileLength",
    324: "TileOffsets",
    325: "TileByteCounts",
    338: "ExtraSamples",
    339: "SampleFormat",
    347: "JPEGTables",
    529: "YCbCrCoefficients",
    530: "YCbCrSubSampling",
    531: "YCbCrPositioning",
    532: "ReferenceBlackWhite",
    34675: "ICCProfile",
}
SUB_IFD_TAGS = frozenset({EXIF_IFD, GPS_IFD, INTEROP_IFD, 330})
REMOVED_CODES = {
    EXIF_IFD: "exif",
    INTEROP_IFD: "exif",
    GPS_IFD: "gps",
    700: "xmp",
    33723: "iptc",
    34377: "photoshop",
    37724: "photoshop",
    330: "tiff-subimage",
}
ASCII = 2
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}

Range = tuple[int, int]  # [start, end) in the file


@dataclass(frozen=True)
class _Entry:
    raw: bytes  # the 12 bytes as stored
    tag: int
    kind: int
    count: int
    field: bytes  # the value, or its offset, in 4 bytes

    @property
    def value_size(self) -> int | None:
        size = TYPE_SIZES.get(self.kind)
        return None if size is None else size * self.count


@dataclass(frozen=True)
class _Ifd:
    offset: int
    entries: tuple[_Entry, ...]
    next_offset: int

    @property
    def end(self) -> int:
        return self.offset + 2 + 12 * len(self.entries) + 4


class _TiffFile:
    def __init__(self, spool: IO[bytes], size: int, order: str) -> None:
        self.spool = spool
        self.size = size
        self.order = order

    def read_at(self, offset: int, size: int) -> bytes:
        """Bytes from the spool; an offset or size reaching outside the file means it was cut
        short (or lies about its layout, which is refused the same way)."""
        if offset < 0 or offset + size > self.size:
            raise InvalidDocument(TRUNCATED)
        self.spool.seek(offset)
        data = self.spool.read(size)
        if len(data) != size:
            raise InvalidDocument(TRUNCATED)
        return data

    def read_ifd(self, offset: int) -> _Ifd:
        (count,) = struct.unpack(self.order + "H", self.read_at(offset, 2))
        body = self.read_at(offset + 2, 12 * count + 4)
        entries = []
        for index in range(count):
            raw = body[12 * index : 12 * index + 12]
            tag, kind, number = struct.unpack(self.order + "HHI", raw[:8])
            entries.append(_Entry(raw, tag, kind, number, raw[8:]))
        (next_offset,) = struct.unpack(self.order + "I", body[-4:])
        return _Ifd(offset, tuple(entries), next_offset)

    def value_range(self, entry: _Entry) -> Range | None:
        """Where an out-of-line value lies; None if it fits in the entry. Raises if unknown
        or outside the file."""
        size = entry.value_size
        if size is None:
            raise InvalidDocument(DAMAGED)
        if size <= 4:
            return None
        (offset,) = struct.unpack(self.order + "I", entry.field)
        if offset + size > self.size:
            raise InvalidDocument(TRUNCATED)
        return offset, offset + size

    def integers(self, entry: _Entry) -> tuple[int, ...]:
        if entry.kind not in (3, 4, 13):  # SHORT, LONG, IFD
            raise InvalidDocument(DAMAGED)
        fmt = "H" if entry.kind == 3 else "I"
        where = self.value_range(entry)
        raw = entry.field if where is None else self.read_at(where[0], where[1] - where[0])
        return struct.unpack(f"{self.order}{entry.count}{fmt}", raw[: entry.value_size])


def sanitise_tiff(spool: IO[bytes], *, limits: IntakeLimits, changes: ChangeLog) -> tuple[int, int]:
    """Sanitise the spooled TIFF in place; return (length to stream out, number of images)."""
    size = spool.seek(0, 2)
    spool.seek(0)
    header = spool.read(8)
    if len(header) < 8:
        raise InvalidDocument(TRUNCATED)
    order = "<" if header[:2] == b"II" else ">"
    tiff = _TiffFile(spool, size, order)
    magic, first_ifd = struct.unpack(order + "HI", header[2:8])
    if magic != 42:
        raise InvalidDocument(DAMAGED)

    kept: list[Range] = [(0, 8)]
    removed: list[Range] = []
    blocks = 0
    ifds = _ifd_chain(tiff, first_ifd)
    for ifd in ifds:
        entries = {entry.tag: entry for entry in ifd.entries}
        width, height = (_single(tiff, entries.get(tag)) for tag in (IMAGE_WIDTH, IMAGE_LENGTH))
        check_pixels(width, height, limits)

        keep = [entry for entry in ifd.entries if entry.tag in KEPT_TAGS]
        for entry in keep:
            if (where := tiff.value_range(entry)) is not None:
                kept.append(where)
        data = _data_blocks(tiff, entries, already=blocks)
        blocks += len(data)
        kept.extend(data)

        for entry in ifd.entries:
            if entry.tag in KEPT_TAGS:
                continue
            changes.add(_removed_code(entry))
            removed.extend(_removed_value_ranges(tiff, entry, depth=0, seen=set()))

        compact_end = ifd.offset + 2 + 12 * len(keep) + 4
        kept.append((ifd.offset, compact_end))
        if len(keep) < len(ifd.entries):
            spool.seek(ifd.offset)
            spool.write(struct.pack(order + "H", len(keep)))
            spool.write(b"".join(entry.raw for entry in keep))
            spool.write(struct.pack(order + "I", ifd.next_offset))
            removed.append((compact_end, ifd.end))

    kept = _merge(kept)
    end = kept[-1][1]
    # Bytes nothing kept refers to: reported unless they are what was removed above.
    for start, stop in _subtract(_complement(kept, 0, size), _merge(removed)):
        if _has_content(tiff, (start, stop)):
            changes.add("unreferenced-data" if start < end else "trailing-data")
    for gap in _complement(kept, 0, end):
        _zero(tiff, gap)
    length = size
    if size > end and _has_content(tiff, (end, size)):
        length = end  # cut off rather than zeroed
    spool.flush()
    return length, len(ifds)


def _ifd_chain(tiff: _TiffFile, first: int) -> list[_Ifd]:
    if first == 0:
        raise InvalidDocument(DAMAGED)  # no image at all
    ifds: list[_Ifd] = []
    seen: set[int] = set()
    offset = first
    while offset:
        if offset in seen:
            raise InvalidDocument(DAMAGED)  # the chain loops
        if len(ifds) >= MAX_PAGES:
            raise InvalidDocument(TOO_MANY_PAGES)
        seen.add(offset)
        ifd = tiff.read_ifd(offset)
        ifds.append(ifd)
        offset = ifd.next_offset
    return ifds


def _single(tiff: _TiffFile, entry: _Entry | None) -> int:
    if entry is None or entry.count < 1:
        raise InvalidDocument(DAMAGED)
    return tiff.integers(entry)[0]


def _data_blocks(tiff: _TiffFile, entries: dict[int, _Entry], *, already: int) -> list[Range]:
    """The byte ranges of the image's strips or tiles."""
    blocks: list[Range] = []
    found = False
    for offsets_tag, counts_tag in (
        (STRIP_OFFSETS, STRIP_BYTE_COUNTS),
        (TILE_OFFSETS, TILE_BYTE_COUNTS),
    ):
        offsets_entry, counts_entry = entries.get(offsets_tag), entries.get(counts_tag)
        if offsets_entry is None:
            continue
        found = True
        if counts_entry is None or offsets_entry.count != counts_entry.count:
            raise InvalidDocument(DAMAGED)
        if already + len(blocks) + offsets_entry.count > MAX_DATA_BLOCKS:
            raise InvalidDocument(TOO_MANY_STRIPS)
        offsets, counts = tiff.integers(offsets_entry), tiff.integers(counts_entry)
        for offset, count in zip(offsets, counts, strict=True):
            if offset + count > tiff.size:
                raise InvalidDocument(TRUNCATED)
            if count:
                blocks.append((offset, offset + count))
    if not found:
        raise InvalidDocument(DAMAGED)  # an image without image data
    return blocks


def _removed_code(entry: _Entry) -> str:
    if entry.tag in REMOVED_CODES:
        return REMOVED_CODES[entry.tag]
    return "tiff-text" if entry.kind == ASCII else "tiff-tag"


def _removed_value_ranges(
    tiff: _TiffFile, entry: _Entry, *, depth: int, seen: set[int]
) -> list[Range]:
    """Where a removed entry's value lies, and for a sub-IFD pointer the sub-IFD and its
    values, recursively. Only used to tell removed data from other unreferenced bytes, so
    anything damaged here is simply not followed."""
    ranges: list[Range] = []
    try:
        where = tiff.value_range(entry)
        if where is not None:
            ranges.append(where)
        if entry.tag not in SUB_IFD_TAGS or depth > 3:
            return ranges
        for offset in tiff.integers(entry):
            if offset in seen:
                continue
            seen.add(offset)
            sub_ifd = tiff.read_ifd(offset)
            ranges.append((sub_ifd.offset, sub_ifd.end))
            for sub_entry in sub_ifd.entries:
                ranges.extend(_removed_value_ranges(tiff, sub_entry, depth=depth + 1, seen=seen))
    except InvalidDocument:
        pass  # a damaged removed structure: its bytes are zeroed all the same
    return ranges


def _merge(ranges: list[Range]) -> list[Range]:
    merged: list[Range] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif start < end:
            merged.append((start, end))
    return merged


def _complement(merged: list[Range], start: int, end: int) -> list[Range]:
    gaps: list[Range] = []
    position = start
    for range_start, range_end in merged:
        if range_start > position:
            gaps.append((position, min(range_start, end)))
        position = max(position, range_end)
    if position < end:
        gaps.append((position, end))
    return [gap for gap in gaps if gap[0] < gap[1]]


def _subtract(ranges: list[Range], taken: list[Range]) -> list[Range]:
    """The parts of ``ranges`` outside ``taken``; both sorted and non-overlapping."""
    left: list[Range] = []
    first = 0
    for start, end in ranges:
        while first < len(taken) and taken[first][1] <= start:
            first += 1
        position = start
        index = first
        while index < len(taken) and taken[index][0] < end:
            taken_start, taken_end = taken[index]
            if taken_start > position:
                left.append((position, taken_start))
            position = max(position, taken_end)
            index += 1
        if position < end:
            left.append((position, end))
    return left


def _chunks_of(where: Range, chunk: int = 1 << 20) -> list[Range]:
    return [(at, min(at + chunk, where[1])) for at in range(where[0], where[1], chunk)]


def _has_content(tiff: _TiffFile, where: Range) -> bool:
    for start, end in _chunks_of(where):
        data = tiff.read_at(start, end - start)
        if data.count(0) != len(data):
            return True
    return False


def _zero(tiff: _TiffFile, where: Range) -> None:
    for start, end in _chunks_of(where):
        data = tiff.read_at(start, end - start)
        if data.count(0) != len(data):
            tiff.spool.seek(start)
            tiff.spool.write(bytes(end - start))
