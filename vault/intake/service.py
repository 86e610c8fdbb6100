"""The one verb of intake: sanitise an upload before it is encrypted and stored.

The type is taken from the content's first bytes only. JPEG and PNG are sanitised while they
stream (nothing spooled); TIFF and PDF need random access and are spooled to anonymous
temporary files in ``spool_dir`` (see :mod:`vault.intake.spool`: plaintext touches that disk
briefly, so it should be tmpfs or an encrypted volume). Every temporary file is closed, and
so gone, when the context manager exits, whatever happened.
"""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

from vault.errors import InvalidDocument
from vault.intake import detect
from vault.intake.document import ChangeLog, SanitisedDocument
from vault.intake.jpeg import sanitise_jpeg
from vault.intake.limits import IntakeLimits
from vault.intake.pdf import sanitise_pdf
from vault.intake.png import sanitise_png
from vault.intake.reader import LimitedReader
from vault.intake.spool import new_spool, spool_upload, stream_file
from vault.intake.tiff import sanitise_tiff


@contextmanager
def sanitised(
    source: BinaryIO, *, limits: IntakeLimits, spool_dir: Path
) -> Iterator[SanitisedDocument]:
    """Detect, check and sanitise an upload; yield the sanitised document to stream out.

    Raises InvalidDocument (with a message safe to show the uploader) or DocumentTooLarge on
    entry, and for JPEG and PNG possibly also while ``chunks()`` streams (see
    :class:`SanitisedDocument`). ``source`` must stay open until the block ends.
    """
    reader = LimitedReader(source, limits=limits)
    media_type = detect.detect_media_type(reader.peek(detect.SNIFF_BYTES))
    changes = ChangeLog()
    with ExitStack() as cleanup:
        pages: int | None = None
        if media_type in (detect.JPEG, detect.PNG):
            stream = sanitise_jpeg if media_type == detect.JPEG else sanitise_png
            generator = stream(reader, limits=limits, changes=changes)
            cleanup.callback(generator.close)
            # Run up to the first output: the header and the pixel limit are checked now.
            first = next(generator, None)
            if first is None:  # cannot happen for a valid image: each yields before it ends
                raise InvalidDocument("the image file is damaged")
            pieces = _prepend(first, generator)
        elif media_type == detect.TIFF:
            spool = cleanup.enter_context(spool_upload(reader, spool_dir, limits.chunk_size))
            length, pages = sanitise_tiff(spool, limits=limits, changes=changes)
            pieces = stream_file(spool, length=length, chunk_size=limits.chunk_size)
        else:
            spool = cleanup.enter_context(spool_upload(reader, spool_dir, limits.chunk_size))
            output = cleanup.enter_context(new_spool(spool_dir))
            result = sanitise_pdf(spool, output, limits=limits, changes=changes)
            spool.close()  # the original is no longer needed; do not keep it on disk
            pages = result.pages
            pieces = stream_file(output, length=result.length, chunk_size=limits.chunk_size)
        yield SanitisedDocument(
            media_type=media_type,
            changes=changes,
            pieces=pieces,
            chunk_size=limits.chunk_size,
            pages=pages,
        )


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest
