"""TIFF: only image-structure tags remain, removed data is zeroed, pixels stay identical."""

from __future__ import annotations

import dataclasses
import io
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageSequence, TiffImagePlugin

from tests import hostile
from vault.errors import InvalidDocument
from vault.intake import IntakeLimits, sanitised
from vault.intake.tiff import KEPT_TAGS

GPS_LATITUDE_BYTES = struct.pack("<6I", *(v for pair in hostile.GPS_LATITUDE for v in pair))


def decoded(data: bytes) -> list[tuple[str, tuple[int, int], bytes]]:
    with Image.open(io.BytesIO(data)) as image:
        return [
            (frame.mode, frame.size, frame.tobytes()) for frame in ImageSequence.Iterator(image)
        ]


def tags_per_page(data: bytes) -> list[set[int]]:
    with Image.open(io.BytesIO(data)) as image:
        assert isinstance(image, TiffImagePlugin.TiffImageFile)
        return [set(image.tag_v2) for _ in ImageSequence.Iterator(image)]


@pytest.mark.parametrize("byte_order", ["<", ">"])
@pytest.mark.parametrize("pages", [1, 3])
def test_metadata_is_removed_and_pixels_kept(
    run: Callable[..., Any], byte_order: str, pages: int
) -> None:
    original = hostile.tiff_with_metadata(byte_order=byte_order, pages=pages)
    assert hostile.PLANTED_NAME.encode() in original

    outcome = run(original)

    assert outcome.media_type == "image/tiff"
    assert outcome.pages == pages
    assert decoded(outcome.data) == decoded(original)
    for planted in (hostile.PLANTED_NAME, "PlantedCam", "xmpmeta", "R98"):
        assert planted.encode() not in outcome.data
    if byte_order == "<":
        assert GPS_LATITUDE_BYTES in original
        assert GPS_LATITUDE_BYTES not in outcome.data
    assert set(outcome.changes) == {"tiff-text", "xmp", "exif", "gps"}
    assert outcome.data[:8] == original[:8]  # edited in place: the first IFD did not move
    assert len(outcome.data) < len(original)  # the last IFD's freed slots were cut off
    for tags in tags_per_page(outcome.data):
        assert tags <= set(KEPT_TAGS)
        assert {256, 257, 273, 279, 274} <= tags  # the image and its orientation remain


def test_sub_ifds_and_removed_values_are_zeroed(run: Callable[..., Any]) -> None:
    original = hostile.tiff_with_metadata()
    with Image.open(io.BytesIO(original)) as image:
        exif_ifd, gps_ifd = image.tag_v2[34665], image.tag_v2[34853]
    outcome = run(original)
    for offset in (exif_ifd, gps_ifd):
        (count,) = struct.unpack("<H", original[offset : offset + 2])
        assert count > 0
        assert outcome.data[offset : offset + 2 + 12 * count + 4] == bytes(2 + 12 * count + 4)


@pytest.mark.parametrize(
    ("compression", "mode"),
    [
        ("tiff_lzw", "RGB"),
        ("tiff_adobe_deflate", "RGB"),
        ("packbits", "L"),
        ("tiff_lzw", "RGBA"),
        ("group4", "1"),
        ("raw", "CMYK"),
    ],
)
def test_libtiff_files_keep_their_pixels(
    run: Callable[..., Any], compression: str, mode: str
) -> None:
    original = hostile.tiff_pillow(compression=compression, mode=mode)
    outcome = run(original)
    assert decoded(outcome.data) == decoded(original)
    assert hostile.PLANTED_NAME.encode() not in outcome.data
    assert "tiff-text" in outcome.changes


def test_jpeg_compressed_tiff_keeps_its_tables_and_pixels(run: Callable[..., Any]) -> None:
    out = io.BytesIO()
    hostile.sample_image(64, 48).save(out, "TIFF", compression="jpeg", quality=90)
    original = out.getvalue()
    with Image.open(io.BytesIO(original)) as image:
        assert 347 in image.tag_v2  # JPEGTables
    outcome = run(original)
    assert decoded(outcome.data) == decoded(original)


@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_a_clean_tiff_passes_byte_for_byte(run: Callable[..., Any], byte_order: str) -> None:
    original = hostile.plain_tiff(byte_order=byte_order)
    outcome = run(original)
    assert outcome.data == original
    assert outcome.changes == ()


def test_hidden_bytes_and_a_polyglot_tail_are_removed(run: Callable[..., Any]) -> None:
    original = hostile.tiff_with_hidden_data()
    tail = len(hostile.zip_file())
    assert zipfile.is_zipfile(io.BytesIO(original))

    outcome = run(original)

    assert hostile.PLANTED_NAME.encode() not in outcome.data
    assert hostile.PLANTED_TAIL.encode() not in outcome.data
    assert not zipfile.is_zipfile(io.BytesIO(outcome.data))
    assert set(outcome.changes) == {"unreferenced-data", "trailing-data"}
    assert len(outcome.data) == len(original) - tail
    assert decoded(outcome.data) == decoded(original)


def _set_entry(data: bytes, tag: int, value: int) -> bytes:
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    out = bytearray(data)
    for index in range(count):
        at = ifd + 2 + 12 * index
        if struct.unpack("<H", data[at : at + 2])[0] == tag:
            out[at + 8 : at + 12] = struct.pack("<I", value)
            return bytes(out)
    raise AssertionError(f"tag {tag} not found")


def _drop_entry(data: bytes, tag: int) -> bytes:
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    entries = [data[ifd + 2 + 12 * i : ifd + 14 + 12 * i] for i in range(count)]
    kept = [entry for entry in entries if struct.unpack("<H", entry[:2])[0] != tag]
    out = bytearray(data)
    body = struct.pack("<H", len(kept)) + b"".join(kept) + data[ifd + 2 + 12 * count :][:4]
    out[ifd : ifd + len(body)] = body
    return bytes(out)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(hostile.tiff_ifd_loop, "the TIFF file is damaged", id="ifd-loop"),
        pytest.param(
            lambda: hostile.plain_tiff()[:4] + struct.pack("<I", 10**9) + hostile.plain_tiff()[8:],
            "the TIFF file is truncated",
            id="first-ifd-outside-the-file",
        ),
        pytest.param(
            lambda: hostile.plain_tiff()[:4] + bytes(4) + hostile.plain_tiff()[8:],
            "the TIFF file is damaged",
            id="no-ifd",
        ),
        pytest.param(
            lambda: _set_entry(hostile.plain_tiff(), 279, 10**6),
            "the TIFF file is truncated",
            id="strip-byte-counts-outside-the-file",
        ),
        pytest.param(
            lambda: _drop_entry(hostile.plain_tiff(), 256),
            "the TIFF file is damaged",
            id="no-width",
        ),
        pytest.param(
            lambda: _drop_entry(hostile.plain_tiff(), 279),
            "the TIFF file is damaged",
            id="no-strip-byte-counts",
        ),
        pytest.param(
            lambda: _drop_entry(_drop_entry(hostile.plain_tiff(), 273), 279),
            "the TIFF file is damaged",
            id="no-image-data",
        ),
        pytest.param(
            lambda: hostile.plain_tiff()[:2] + b"\x2b\x00" + hostile.plain_tiff()[4:],
            "BigTIFF files are not accepted: save the image as a standard TIFF",
            id="bigtiff",
        ),
    ],
)
def test_damage_is_refused(
    run: Callable[..., Any], damage: Callable[[], bytes], message: str
) -> None:
    with pytest.raises(InvalidDocument, match=f"^{re.escape(message)}$") as refused:
        run(damage())
    assert refused.type is InvalidDocument


def test_a_strip_outside_the_file_is_refused(run: Callable[..., Any]) -> None:
    data = hostile.tiff_header_only(4, 4)
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    out = bytearray(data)
    for index in range(count):
        at = ifd + 2 + 12 * index
        if struct.unpack("<H", data[at : at + 2])[0] == 273:
            out[at + 8 : at + 12] = struct.pack("<I", len(data) - 4)  # 16 bytes from there
    with pytest.raises(InvalidDocument, match=r"^the TIFF file is truncated$"):
        run(bytes(out))


def test_every_truncation_is_refused(spool_dir: Path, limits: IntakeLimits) -> None:
    original = hostile.tiff_with_metadata()  # IFD at the end, as many writers do
    for cut in range(4, len(original), 3):
        with (
            pytest.raises(InvalidDocument, match=r"^the TIFF file is (truncated|damaged)$"),
            sanitised(io.BytesIO(original[:cut]), limits=limits, spool_dir=spool_dir),
        ):
            pytest.fail("refused on entry")


def test_too_many_pixels_is_refused(run: Callable[..., Any]) -> None:
    with pytest.raises(
        InvalidDocument, match=r"^image too large: 10,000 megapixels, limit 200$"
    ) as refused:
        run(hostile.tiff_header_only(100_000, 100_000))
    assert refused.type is InvalidDocument


def test_every_page_is_checked_against_the_pixel_limit(
    run: Callable[..., Any], limits: IntakeLimits
) -> None:
    pages = hostile.tiff_with_metadata(pages=3)  # 40x24, 41x24, 42x24 pixels
    tight = dataclasses.replace(limits, max_image_pixels=41 * 24)
    with pytest.raises(InvalidDocument, match=r"^image too large"):
        run(pages, tight)
    assert run(pages, dataclasses.replace(limits, max_image_pixels=42 * 24)).pages == 3


@pytest.mark.parametrize(("width", "height"), [(0, 4), (4, 0)])
def test_zero_dimensions_are_refused(run: Callable[..., Any], width: int, height: int) -> None:
    with pytest.raises(InvalidDocument, match=r"^the image has no pixels"):
        run(hostile.tiff_header_only(width, height))
