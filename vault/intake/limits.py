"""The limits intake enforces on an upload, and the refusal messages that quote them."""

from dataclasses import dataclass

from vault.errors import DocumentTooLarge, InvalidDocument

MIB = 1024 * 1024


@dataclass(frozen=True)
class IntakeLimits:
    """Every bound intake applies. Defaults suit production; tests pass small ones."""

    max_bytes: int = 512 * MIB
    max_image_pixels: int = 200_000_000
    pdf_memory_bytes: int = 1024 * MIB  # address-space limit of the PDF child process
    pdf_cpu_seconds: int = 60
    pdf_wall_seconds: float = 120.0
    chunk_size: int = 1 << 20


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:,.1f}".removesuffix(".0")


def _size(byte_count: int) -> str:
    if byte_count >= MIB:
        return f"{byte_count / MIB:,.1f}".removesuffix(".0") + " MiB"
    return f"{byte_count:,} bytes"


def too_large(limits: IntakeLimits) -> DocumentTooLarge:
    return DocumentTooLarge(f"file too large: the limit is {_size(limits.max_bytes)}")


def check_pixels(width: int, height: int, limits: IntakeLimits) -> None:
    """Refuse an image with no pixels or more pixels than the limit, before decoding any."""
    if width <= 0 or height <= 0:
        raise InvalidDocument("the image has no pixels: its width or height is zero")
    pixels = width * height
    if pixels > limits.max_image_pixels:
        raise InvalidDocument(
            f"image too large: {_megapixels(pixels)} megapixels, "
            f"limit {_megapixels(limits.max_image_pixels)}"
        )
