"""JPEG: metadata and polyglot tails go, the image stays pixel for pixel, damage is refused."""

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
from PIL import Image

from tests import hostile
from vault.errors import InvalidDocument
from vault.intake import IntakeLimits, sanitised

EVERYTHING_REMOVED = {
    "exif",
    "xmp",
    "iptc",
    "comment",
    "jpeg-app-segment",
    "jpeg-thumbnail",
    "trailing-data",
}
VARIANTS = [
    pytest.param({}, id="baseline"),
    pytest.param({"progressive": True}, id="progressive"),
    pytest.param({"restart": True}, id="restart-markers"),
    pytest.param({"progressive": True, "restart": True}, id="progressive-restart"),
]


def decoded(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode, image.size, image.tobytes()


def segments(data: bytes) -> list[tuple[int, bytes]]:
    """The marker segments before the first scan, as (marker, payload)."""
    found, at = [], 2
    while data[at + 1] != 0xDA:
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        found.append((marker, data[at + 4 : at + 2 + length]))
        at += 2 + length
    return found


@pytest.mark.parametrize("options", VARIANTS)
def test_metadata_and_tail_are_removed_and_pixels_kept(
    run: Callable[..., Any], options: dict[str, bool]
) -> None:
    original = hostile.jpeg_with_metadata(**options)
    assert hostile.PLANTED_NAME.encode() in original

    outcome = run(original)

    assert outcome.media_type == "image/jpeg"
    assert decoded(outcome.data) == decoded(original)
    for planted in (hostile.PLANTED_NAME, hostile.PLANTED_TAIL, "xap/1.0", "Photoshop 3.0"):
        assert planted.encode() not in outcome.data
    assert set(outcome.changes) == EVERYTHING_REMOVED
    assert outcome.data.endswith(b"\xff\xd9")
    assert not zipfile.is_zipfile(io.BytesIO(outcome.data))
    with Image.open(io.BytesIO(outcome.data)) as image:
        exif = image.getexif()
        assert dict(exif) == {0x0112: 6}  # only the orientation survives
        assert not exif.get_ifd(0x8825)  # no GPS
        assert not exif.get_ifd(0x8769)
        assert image.info["icc_profile"] == hostile.srgb_icc_profile()
        assert "comment" not in image.info


def test_kept_segments_are_only_image_structure(run: Callable[..., Any]) -> None:
    outcome = run(hostile.jpeg_with_metadata())
    markers = [marker for marker, _ in segments(outcome.data)]
    allowed = {0xE0, 0xE1, 0xE2, 0xDB, 0xC4, 0xC0, 0xC2, 0xDD}
    assert set(markers) <= allowed
    jfif = next(payload for marker, payload in segments(outcome.data) if marker == 0xE0)
    assert jfif.startswith(b"JFIF\x00")
    assert len(jfif) == 14  # header only: the thumbnail is gone
    assert jfif[12:14] == b"\x00\x00"


@pytest.mark.parametrize("options", [*VARIANTS, pytest.param({"icc": True}, id="icc")])
def test_a_clean_jpeg_passes_byte_for_byte(
    run: Callable[..., Any], options: dict[str, bool]
) -> None:
    original = hostile.plain_jpeg(**options)
    outcome = run(original)
    assert outcome.data == original
    assert outcome.changes == ()


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 4096])
def test_output_does_not_depend_on_chunk_boundaries(
    run: Callable[..., Any], limits: IntakeLimits, chunk_size: int
) -> None:
    # Small chunks put FF bytes, stuffing and restart markers across every boundary.
    original = hostile.jpeg_with_metadata(progressive=True, restart=True)
    assert b"\xff\xd0" in original  # restart markers
    assert b"\xff\x00" in original  # stuffed FF bytes
    reference = run(original).data
    assert run(original, dataclasses.replace(limits, chunk_size=chunk_size)).data == reference


def test_every_truncation_is_refused(spool_dir: Path, limits: IntakeLimits) -> None:
    original = hostile.plain_jpeg(progressive=True, restart=True)
    for cut in range(3, len(original)):
        with (
            pytest.raises(InvalidDocument, match=r"^the JPEG file is") as refused,
            sanitised(io.BytesIO(original[:cut]), limits=limits, spool_dir=spool_dir) as document,
        ):
            b"".join(document.chunks())
        assert refused.type is InvalidDocument


def _with_frame_size(width: int, height: int) -> bytes:
    data = bytearray(hostile.plain_jpeg())
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_too_many_pixels_is_refused_before_any_output(
    spool_dir: Path, limits: IntakeLimits
) -> None:
    image = _with_frame_size(60_000, 60_000)  # real scan data follows the header
    message = "image too large: 3,600 megapixels, limit 200"
    with (
        pytest.raises(InvalidDocument, match=f"^{message}$"),
        sanitised(io.BytesIO(image), limits=limits, spool_dir=spool_dir),
    ):
        pytest.fail("refused on entry, before any chunk")


def test_header_only_giant_is_refused(run: Callable[..., Any], limits: IntakeLimits) -> None:
    small = dataclasses.replace(limits, max_image_pixels=1_000_000)
    with pytest.raises(InvalidDocument, match=r"^image too large: 1\.2 megapixels, limit 1$"):
        run(hostile.jpeg_header_only(1200, 1000), small)
    assert run(_with_frame_size(64, 48), small).media_type == "image/jpeg"


@pytest.mark.parametrize(("width", "height"), [(0, 48), (64, 0)])
def test_zero_dimensions_are_refused(run: Callable[..., Any], width: int, height: int) -> None:
    with pytest.raises(InvalidDocument, match=r"^the image has no pixels"):
        run(_with_frame_size(width, height))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(
            lambda d: d.replace(b"\xff\xdb", b"\x00\xff\xdb", 1), "the JPEG file is damaged",
            id="junk-between-segments",
        ),
        pytest.param(
            lambda d: d[:2] + b"\xff\xd9", "the JPEG file is damaged: it has no frame header",
            id="eoi-right-after-soi",
        ),
        pytest.param(
            lambda d: d.replace(b"\xff\xc0", b"\xff\xe5", 1),
            "the JPEG file is damaged: it has no frame header",
            id="frame-header-missing",
        ),
        pytest.param(
            lambda d: d[: d.index(b"\xff\xda")] + b"\xff\xd9",
            "the JPEG file is damaged: it has no image data",
            id="no-scan",
        ),
        pytest.param(
            lambda d: d[:2] + b"\xff\xd8" + d[2:], "the JPEG file is damaged", id="second-soi"
        ),
        pytest.param(
            lambda d: d[:2] + b"\xff\xdb\x00\x01" + d[2:], "the JPEG file is damaged",
            id="segment-length-below-2",
        ),
        pytest.param(
            lambda d: d[:2] + b"\xff" * 2000 + d[2:], "the JPEG file is damaged",
            id="endless-fill-bytes",
        ),
    ],
)  # fmt: skip
def test_damaged_structure_is_refused(
    run: Callable[..., Any], damage: Callable[[bytes], bytes], message: str
) -> None:
    with pytest.raises(InvalidDocument, match=f"^{re.escape(message)}$"):
        run(damage(hostile.plain_jpeg()))


def test_exif_without_orientation_is_dropped_entirely(run: Callable[..., Any]) -> None:
    exif = Image.Exif()
    exif[0x013B] = hostile.PLANTED_NAME
    out = io.BytesIO()
    hostile.sample_image(32, 16).save(out, "JPEG", exif=exif.tobytes())
    outcome = run(out.getvalue())
    assert outcome.changes == ("exif",)
    assert b"Exif\x00\x00" not in outcome.data
    assert hostile.PLANTED_NAME.encode() not in outcome.data
