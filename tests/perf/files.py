"""Benchmark inputs, generated: a large image that needs no rewriting, a many-page PDF."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pikepdf


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_large_png(path: Path, *, target_bytes: int, width: int = 16384) -> tuple[int, int]:
    """Write an RGB PNG of noise, about ``target_bytes`` long, with no metadata at all.

    Stored (uncompressed) deflate blocks keep generation fast; a sanitiser passes every chunk
    through unchanged, so the file measures the envelope pipeline, not image rewriting.
    Returns (width, height).
    """
    row = width * 3 + 1
    height = max(1, target_bytes // row)
    noise = random.Random(7).randbytes(8 * 1024 * 1024)
    compressor = zlib.compressobj(level=0)
    rows_per_idat = max(1, (4 * 1024 * 1024) // row)
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        offset = 0
        for first in range(0, height, rows_per_idat):
            rows = min(rows_per_idat, height - first)
            raw = bytearray()
            for _ in range(rows):
                if offset + row - 1 > len(noise):
                    offset = 0
                raw += b"\x00" + noise[offset : offset + row - 1]
                offset += 4099  # shift rows so the data does not repeat exactly
            out.write(_chunk(b"IDAT", compressor.compress(bytes(raw))))
        out.write(_chunk(b"IDAT", compressor.flush()))
        out.write(_chunk(b"IEND", b""))
    return width, height


def write_text_pdf(path: Path, *, pages: int) -> None:
    """A PDF of ``pages`` pages, each with a little text, as a scanned-and-OCRed letter has."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
        )
    )
    for number in range(pages):
        text = f"BT /F1 11 Tf 72 770 Td (Seite {number + 1}: Befund und Verlauf) Tj ET"
        page = pikepdf.Dictionary(
            Type=pikepdf.Name.Page,
            MediaBox=[0, 0, 595, 842],
            Resources=pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font)),
            Contents=pdf.make_stream(text.encode() * 40),
        )
        pdf.pages.append(pikepdf.Page(page))
    pdf.save(path)
