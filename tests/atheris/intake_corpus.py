"""How the intake target reads one fuzz input, its limits, and its seed corpus.

A fuzz input is one plan byte and a body. The plan's bits 0-2 choose a format whose magic bytes
are put in front of the body (so mutations explore what follows the magic instead of breaking
it), or none (``raw``: the body is the whole upload, and type detection is fuzzed too); bits 3-4
choose the chunk size the upload is read in, down to one byte, because every sanitiser has its
own code for structures that straddle a chunk boundary; bit 5 has a PNG's chunk checksums put
right before it is read, so that mutations get past the checksum to what the chunks say. The
seeds are the ordinary and hostile files of :mod:`tests.hostile`, each under the plan of its own
format.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from vault.intake import IntakeLimits

KIB = 1024


@dataclass(frozen=True)
class Format:
    name: str
    prefix: bytes
    media_type: str | None  # what detection must say; None for raw uploads


PNG = Format("png", b"\x89PNG\r\n\x1a\n", "image/png")
JPEG = Format("jpeg", b"\xff\xd8\xff", "image/jpeg")
TIFF_LE = Format("tiff-le", b"II*\x00", "image/tiff")
TIFF_BE = Format("tiff-be", b"MM\x00*", "image/tiff")
PDF = Format("pdf", b"%PDF-", "application/pdf")
RAW = Format("raw", b"", None)
FORMATS = (PNG, JPEG, TIFF_LE, TIFF_BE, RAW, PDF)
# Indexed by plan bits 0-2: the images twice, PDF once (each PDF costs a child process).
PLANNED_FORMATS = (PNG, JPEG, TIFF_LE, TIFF_BE, PNG, JPEG, RAW, PDF)
CHUNK_SIZES = (64 * KIB, 4 * KIB, 61, 1)  # plan bits 3-4

MAX_INPUT_BYTES = 64 * KIB  # libFuzzer's -max_len: a bit over the size limit below


def limits(chunk_size: int) -> IntakeLimits:
    """Small limits, so refusals for size and pixels are reachable and PDFs end quickly."""
    return IntakeLimits(
        max_bytes=48 * KIB,
        max_image_pixels=1_000_000,
        pdf_memory_bytes=256 * 1024 * KIB,
        pdf_cpu_seconds=2,
        pdf_wall_seconds=4.0,
        chunk_size=chunk_size,
    )


@dataclass(frozen=True)
class Plan:
    format: Format
    chunk_size: int
    fix_png_checksums: bool


def read_plan(plan: int) -> Plan:
    return Plan(PLANNED_FORMATS[plan & 7], CHUNK_SIZES[(plan >> 3) & 3], bool(plan & 0x20))


def plan_byte(format: Format, chunk_index: int = 0, *, fix_png_checksums: bool = False) -> int:
    return PLANNED_FORMATS.index(format) | (chunk_index << 3) | (0x20 * fix_png_checksums)


def upload_of(plan: Plan, body: bytes) -> bytes:
    upload = plan.format.prefix + body
    if plan.fix_png_checksums and upload.startswith(PNG.prefix):
        return with_png_checksums(upload)
    return upload


def with_png_checksums(png: bytes) -> bytes:
    """The PNG with the CRC of every whole chunk recomputed (anything after the last whole
    chunk left as it is)."""
    out = bytearray(png)
    at = len(PNG.prefix)
    while at + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, at)
        end = at + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into(">I", out, end, zlib.crc32(out[at + 4 : end]))
        at = end + 4
    return bytes(out)


def _sample_files() -> dict[str, tuple[Format, Callable[[], bytes]]]:
    from tests import hostile as h  # pikepdf and Pillow: only where seeds are written

    return {
        "plain-png": (PNG, h.plain_png),
        "palette-png": (PNG, lambda: h.plain_png(mode="P")),
        "metadata-png": (PNG, h.png_with_metadata),
        "split-idat-png": (PNG, lambda: h.png_split_idat(piece=700)),
        "plain-jpeg": (JPEG, h.plain_jpeg),
        "progressive-restart-jpeg": (JPEG, lambda: h.plain_jpeg(progressive=True, restart=True)),
        "metadata-jpeg": (JPEG, h.jpeg_with_metadata),
        "plain-tiff-le": (TIFF_LE, h.plain_tiff),
        "plain-tiff-be": (TIFF_BE, lambda: h.plain_tiff(byte_order=">")),
        "metadata-tiff": (TIFF_LE, lambda: h.tiff_with_metadata(pages=2)),
        "metadata-tiff-be": (TIFF_BE, lambda: h.tiff_with_metadata(byte_order=">")),
        "hidden-data-tiff": (TIFF_LE, h.tiff_with_hidden_data),
        "lzw-tiff": (TIFF_LE, h.tiff_pillow),
        "ifd-loop-tiff": (TIFF_LE, h.tiff_ifd_loop),
        "text-pdf": (PDF, lambda: h.text_pdf(pages=1)),
        "javascript-pdf": (PDF, h.pdf_with_document_javascript),
        "metadata-pdf": (PDF, h.pdf_with_metadata),
        "raw-zip": (RAW, h.zip_file),
        "raw-bigtiff": (RAW, lambda: h.BIGTIFF_HEADER),
        "raw-png-then-pdf": (RAW, h.png_with_pdf_chunk),
    }


def seeds() -> dict[str, bytes]:
    """Every sample file under its own format's plan, read in whole chunks and in one other
    chunk size."""
    found: dict[str, bytes] = {}
    for number, (name, (format, build)) in enumerate(_sample_files().items()):
        data = build()
        if not data.startswith(format.prefix):
            raise ValueError(f"the {name} sample does not start with the {format.name} magic")
        if len(data) > MAX_INPUT_BYTES - 1:
            raise ValueError(f"the {name} sample is larger than libFuzzer's -max_len")
        body = data[len(format.prefix) :]
        for chunk_index in sorted({0, 1 + number % (len(CHUNK_SIZES) - 1)}):
            found[f"{name}-chunk-{chunk_index}"] = bytes([plan_byte(format, chunk_index)]) + body
        if format is PNG:
            plan = plan_byte(format, fix_png_checksums=True)
            found[f"{name}-fixed-checksums"] = bytes([plan]) + body
    return found
