"""Limits and resources: the size limit stops reading at once, memory does not grow with the
file, spool files exist only while the document is open, a document is read once."""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests import hostile
from vault.errors import DocumentTooLarge, InvalidDocument
from vault.intake import IntakeLimits, sanitised


class CountingSource(io.RawIOBase):
    """A read-only upload that counts the bytes it hands out."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._data.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)


def noise_jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((width, height), 80).save(out, "JPEG", quality=95)
    return out.getvalue()


def stored_png(width: int, height: int) -> bytes:
    """An RGB PNG of noise with uncompressed deflate data: as large as its pixels."""
    row = width * 3
    noise = random.Random(3).randbytes(row * height)
    scanlines = b"".join(b"\x00" + noise[y * row : (y + 1) * row] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    idat = zlib.compress(scanlines, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def raw_tiff(width: int, height: int) -> bytes:
    out = io.BytesIO()
    image = Image.frombytes("RGB", (width, height), random.Random(5).randbytes(width * height * 3))
    image.save(out, "TIFF")
    return out.getvalue()


SAMPLES = {
    "pdf": lambda: hostile.text_pdf(pages=40),
    "jpeg": lambda: noise_jpeg(200, 200),
    "png": lambda: stored_png(100, 100),
    "tiff": lambda: raw_tiff(60, 60),
}


@pytest.mark.parametrize("kind", SAMPLES)
def test_the_size_limit_stops_reading_at_once(
    spool_dir: Path, limits: IntakeLimits, kind: str
) -> None:
    data = SAMPLES[kind]()
    small = dataclasses.replace(limits, max_bytes=len(data) // 3, chunk_size=512)
    source = CountingSource(data)
    with (
        pytest.raises(
            DocumentTooLarge, match=f"^file too large: the limit is {small.max_bytes:,} bytes$"
        ),
        sanitised(source, limits=small, spool_dir=spool_dir) as document,
    ):
        b"".join(document.chunks())  # JPEG and PNG stream, so they find out here
    assert source.bytes_read <= small.max_bytes + small.chunk_size
    assert source.bytes_read < len(data)


@pytest.mark.parametrize("kind", SAMPLES)
def test_a_file_of_exactly_the_limit_is_accepted(
    run: Callable[..., object], limits: IntakeLimits, kind: str
) -> None:
    data = SAMPLES[kind]()
    exact = dataclasses.replace(limits, max_bytes=len(data), chunk_size=512)
    assert run(data, exact).media_type.split("/")[1] in kind


def test_the_limit_message_uses_mebibytes_for_large_limits(
    spool_dir: Path, limits: IntakeLimits
) -> None:
    one_and_a_half = dataclasses.replace(limits, max_bytes=3 * 512 * 1024)
    padded = hostile.text_pdf() + b"\n" * (2 * 1024 * 1024)
    with (
        pytest.raises(DocumentTooLarge, match=r"^file too large: the limit is 1\.5 MiB$"),
        sanitised(io.BytesIO(padded), limits=one_and_a_half, spool_dir=spool_dir),
    ):
        pytest.fail("refused on entry")


@pytest.mark.parametrize(
    ("kind", "make"),
    [
        ("jpeg", lambda: noise_jpeg(3000, 2000)),
        ("png", lambda: stored_png(2000, 1500)),
        ("tiff", lambda: raw_tiff(2000, 1500)),
    ],
)
def test_memory_does_not_grow_with_the_file(
    spool_dir: Path, limits: IntakeLimits, kind: str, make: Callable[[], bytes]
) -> None:
    data = make()
    assert len(data) > 4 * 1024 * 1024
    streaming = dataclasses.replace(limits, chunk_size=64 * 1024)
    source = io.BytesIO(data)
    tracemalloc.start()
    try:
        with sanitised(source, limits=streaming, spool_dir=spool_dir) as document:
            size = sum(len(chunk) for chunk in document.chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == len(data)  # nothing to remove from these
    assert peak < 1024 * 1024  # a few chunks, not the file


@pytest.mark.parametrize("make", [hostile.plain_tiff, hostile.text_pdf])
def test_spool_files_exist_only_while_the_document_is_open(
    spool_dir: Path,
    spool_fds: Callable[[], list[str]],
    limits: IntakeLimits,
    make: Callable[[], bytes],
) -> None:
    with sanitised(io.BytesIO(make()), limits=limits, spool_dir=spool_dir) as document:
        spooled = spool_fds()
        assert spooled  # anonymous: listed as "/spool/#123 (deleted)", never a name
        assert all(target.endswith("(deleted)") for target in spooled)
        assert list(spool_dir.iterdir()) == []
        b"".join(document.chunks())
    assert spool_fds() == []


class CallerFailed(Exception):
    pass


@pytest.mark.parametrize(
    "make", [hostile.plain_tiff, hostile.text_pdf, hostile.plain_jpeg, hostile.plain_png]
)
def test_cleanup_happens_when_the_caller_fails_half_way(
    spool_dir: Path, limits: IntakeLimits, make: Callable[[], bytes]
) -> None:
    small_chunks = dataclasses.replace(limits, chunk_size=64)

    def read_a_little_then_fail() -> None:
        with sanitised(io.BytesIO(make()), limits=small_chunks, spool_dir=spool_dir) as document:
            next(document.chunks())
            raise CallerFailed

    with pytest.raises(CallerFailed):
        read_a_little_then_fail()
    # the spool_dir fixture checks that no file and no descriptor is left


def test_refused_files_leave_nothing_behind(
    spool_dir: Path, spool_fds: Callable[[], list[str]], limits: IntakeLimits
) -> None:
    for data in (
        hostile.truncated(hostile.plain_tiff()),
        hostile.pdf_garbage_after_header(),
        hostile.truncated(hostile.plain_jpeg()),
        hostile.png_header_only(100_000, 100_000),
    ):
        with (
            pytest.raises(InvalidDocument),
            sanitised(io.BytesIO(data), limits=limits, spool_dir=spool_dir) as document,
        ):
            b"".join(document.chunks())
        assert spool_fds() == []


def test_a_document_is_read_once(spool_dir: Path, limits: IntakeLimits) -> None:
    with sanitised(io.BytesIO(hostile.plain_png()), limits=limits, spool_dir=spool_dir) as doc:
        assert b"".join(doc.chunks()) == hostile.plain_png()
        with pytest.raises(RuntimeError, match="read only once"):
            doc.chunks()


def test_chunks_are_about_the_chunk_size(spool_dir: Path, limits: IntakeLimits) -> None:
    data = stored_png(300, 300)
    sized = dataclasses.replace(limits, chunk_size=10_000)
    with sanitised(io.BytesIO(data), limits=sized, spool_dir=spool_dir) as document:
        chunks = list(document.chunks())
    assert b"".join(chunks) == data
    assert all(10_000 <= len(chunk) < 20_000 for chunk in chunks[:-1])
