"""Telling the accepted file types apart by their first bytes, never by name or declared type."""

from vault.errors import InvalidDocument

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
TIFF = "image/tiff"

ACCEPTED_TYPES = (PDF, JPEG, PNG, TIFF)
SNIFF_BYTES = 8
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

NOT_ACCEPTED = "file type not accepted: only PDF, JPEG, PNG and TIFF"


def detect_media_type(head: bytes) -> str:
    """The media type of a file from its first ``SNIFF_BYTES`` bytes, or InvalidDocument."""
    if not head:
        raise InvalidDocument("the file is empty")
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(PNG_SIGNATURE):
        return PNG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return TIFF
    if head.startswith((b"II+\x00", b"MM\x00+")):
        raise InvalidDocument("BigTIFF files are not accepted: save the image as a standard TIFF")
    raise InvalidDocument(NOT_ACCEPTED)
