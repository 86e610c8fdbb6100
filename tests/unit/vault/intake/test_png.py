"""PNG: text, EXIF and unknown chunks go, checksums are verified, pixels stay identical."""

from __future__ import annotations

import dataclasses
import io
import random
import re
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageSequence
from PIL.PngImagePlugin import PngInfo

from tests import hostile
from vault.errors import InvalidDocument
from vault.intake import IntakeLimits, sanitised
from vault.intake.document import ChangeLog
from vault.intake.png import sanitise_png
from vault.intake.reader import LimitedReader


def decoded(data: bytes) -> list[tuple[str, tuple[int, int], bytes]]:
    with Image.open(io.BytesIO(data)) as image:
        return [
            (frame.mode, frame.size, frame.tobytes()) for frame in ImageSequence.Iterator(image)
        ]


def chunk_types(data: bytes) -> list[bytes]:
    kinds, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kinds.append(data[at + 4 : at + 8])
        at += 12 + length
    return kinds


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_metadata_and_tail_are_removed_and_pixels_kept(run: Callable[..., Any]) -> None:
    original = hostile.png_with_metadata()
    assert hostile.PLANTED_NAME.encode() in original

    outcome = run(original)

    assert outcome.media_type == "image/png"
    assert decoded(outcome.data) == decoded(original)
    assert hostile.PLANTED_NAME.encode() not in outcome.data
    assert hostile.PLANTED_TAIL.encode() not in outcome.data
    assert set(outcome.changes) == {
        "png-text",
        "exif",
        "png-time",
        "png-unknown-chunk",
        "trailing-data",
    }
    assert chunk_types(outcome.data) == [b"IHDR", b"gAMA", b"pHYs", b"IDAT", b"IEND"]
    assert outcome.data.endswith(png_chunk(b"IEND", b""))
    assert not zipfile.is_zipfile(io.BytesIO(outcome.data))
    with Image.open(io.BytesIO(outcome.data)) as image:
        assert not image.getexif()
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def _saved(image: Image.Image, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: hostile.plain_png("RGB"), id="rgb"),
        pytest.param(lambda: hostile.plain_png("RGBA"), id="rgba"),
        pytest.param(lambda: hostile.plain_png("L"), id="grey"),
        pytest.param(lambda: hostile.plain_png("LA"), id="grey-alpha"),
        pytest.param(
            lambda: _saved(hostile.sample_image(40, 20, "L").convert("I;16")), id="16-bit"
        ),
        pytest.param(
            lambda: _saved(hostile.sample_image(40, 20).quantize(16), transparency=3),
            id="palette-with-transparency",
        ),
        pytest.param(
            lambda: _saved(hostile.sample_image(40, 20), icc_profile=hostile.srgb_icc_profile()),
            id="icc",
        ),
        pytest.param(hostile.png_split_idat, id="many-idat"),
        pytest.param(
            lambda: _saved(
                hostile.sample_image(40, 20),
                save_all=True,
                append_images=[hostile.sample_image(40, 20).rotate(90)],
                duration=100,
            ),
            id="apng",
        ),
    ],
)
def test_a_clean_png_passes_byte_for_byte(
    run: Callable[..., Any], make: Callable[[], bytes]
) -> None:
    original = make()
    outcome = run(original)
    assert outcome.data == original
    assert outcome.changes == ()
    assert decoded(outcome.data) == decoded(original)


def test_apng_frames_survive_with_metadata_removed(run: Callable[..., Any]) -> None:
    frames = [hostile.sample_image(40, 20), hostile.sample_image(40, 20).rotate(180)]
    info = PngInfo()
    info.add_text("Author", hostile.PLANTED_NAME)
    original = _saved(frames[0], save_all=True, append_images=frames[1:], pnginfo=info)
    outcome = run(original)
    assert outcome.changes == ("png-text",)
    assert hostile.PLANTED_NAME.encode() not in outcome.data
    assert len(decoded(outcome.data)) == 2
    assert decoded(outcome.data) == decoded(original)
    assert {b"acTL", b"fcTL", b"fdAT"} <= set(chunk_types(outcome.data))


@pytest.mark.parametrize("chunk_size", [1, 3, 5, 13, 1000])
def test_output_does_not_depend_on_chunk_boundaries(
    run: Callable[..., Any], limits: IntakeLimits, chunk_size: int
) -> None:
    original = hostile.png_with_metadata()
    reference = run(original).data
    assert run(original, dataclasses.replace(limits, chunk_size=chunk_size)).data == reference


def test_large_chunks_are_streamed_in_pieces(limits: IntakeLimits) -> None:
    # One IDAT of 300 kB passes through in pieces no larger than the chunk size.
    noise = random.Random(1).randbytes(333 * 3 * 300)
    scanlines = b"".join(b"\x00" + noise[row * 999 : row * 999 + 999] for row in range(300))
    idat = zlib.compress(scanlines, 0)  # stored: about 300 kB
    png = (
        hostile.png_header_only(333, 300)[:33] + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )
    small = dataclasses.replace(limits, chunk_size=4096)
    reader = LimitedReader(io.BytesIO(png), limits=small)
    pieces = list(sanitise_png(reader, limits=small, changes=ChangeLog()))
    assert b"".join(pieces) == png
    assert max(len(piece) for piece in pieces) <= 4096
    assert len(decoded(png)[0][2]) == 333 * 300 * 3


def _corrupt(data: bytes, kind: bytes) -> bytes:
    at = data.index(kind) + 4  # first data byte of that chunk
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(
            lambda d: _corrupt(d, b"IDAT"),
            "the PNG file is damaged: a chunk checksum does not match",
            id="idat-bit-flip",
        ),
        pytest.param(
            lambda d: _corrupt(d, b"tEXt"),
            "the PNG file is damaged: a chunk checksum does not match",
            id="bit-flip-in-a-dropped-chunk",
        ),
        pytest.param(
            lambda d: d[:8] + png_chunk(b"gAMA", bytes(4)) + d[8:],
            "the PNG file is damaged",
            id="ihdr-not-first",
        ),
        pytest.param(
            lambda d: d[:33] + png_chunk(b"IHDR", d[16:29]) + d[33:],
            "the PNG file is damaged",
            id="second-ihdr",
        ),
        pytest.param(
            lambda d: d[:33] + b"\x80\x00\x00\x00IDAT" + d[41:],
            "the PNG file is damaged",
            id="chunk-length-over-2-31",
        ),
        pytest.param(
            lambda d: d[:33] + png_chunk(b"t3XT", b"x") + d[33:],
            "the PNG file is damaged",
            id="chunk-type-not-letters",
        ),
        pytest.param(
            lambda d: d[:33] + png_chunk(b"IEND", b""),
            "the PNG file is damaged: it has no image data",
            id="no-idat",
        ),
    ],
)
def test_damage_is_refused(
    run: Callable[..., Any], damage: Callable[[bytes], bytes], message: str
) -> None:
    with pytest.raises(InvalidDocument, match=f"^{re.escape(message)}$") as refused:
        run(damage(hostile.png_with_metadata()))
    assert refused.type is InvalidDocument


def test_every_truncation_is_refused(spool_dir: Path, limits: IntakeLimits) -> None:
    original = hostile.plain_png()
    for cut in range(8, len(original)):
        with (
            pytest.raises(InvalidDocument, match=r"^the PNG file is") as refused,
            sanitised(io.BytesIO(original[:cut]), limits=limits, spool_dir=spool_dir) as document,
        ):
            b"".join(document.chunks())
        assert refused.type is InvalidDocument


def test_too_many_pixels_is_refused_before_any_output(
    spool_dir: Path, limits: IntakeLimits
) -> None:
    message = "image too large: 10,000 megapixels, limit 200"
    with (
        pytest.raises(InvalidDocument, match=f"^{message}$"),
        sanitised(
            io.BytesIO(hostile.png_header_only(100_000, 100_000)),
            limits=limits,
            spool_dir=spool_dir,
        ),
    ):
        pytest.fail("refused on entry, before any chunk")


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0)])
def test_zero_dimensions_are_refused(run: Callable[..., Any], width: int, height: int) -> None:
    with pytest.raises(InvalidDocument, match=r"^the image has no pixels"):
        run(hostile.png_header_only(width, height))
