"""Spooling an upload to an anonymous temporary file, for formats that need random access.

The spool holds plaintext for as long as the upload is being processed. It is created with
``tempfile.TemporaryFile`` (O_TMPFILE on Linux): it has no name from the start, so a crash
leaves nothing behind, and it is gone once closed. ``spool_dir`` should still be on tmpfs or
an encrypted volume, because the bytes do touch that disk while they are processed.
"""

from collections.abc import Iterator
from pathlib import Path
from tempfile import TemporaryFile
from typing import IO

from vault.intake.reader import LimitedReader


def new_spool(spool_dir: Path) -> IO[bytes]:
    return TemporaryFile(dir=spool_dir)


def spool_upload(reader: LimitedReader, spool_dir: Path, chunk_size: int) -> IO[bytes]:
    """Copy the rest of the upload (counted against the size limit) into a new spool file.

    On any error the spool is closed before the error propagates.
    """
    spool = new_spool(spool_dir)
    try:
        while piece := reader.read_some(chunk_size):
            spool.write(piece)
        spool.flush()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def stream_file(spool: IO[bytes], *, length: int, chunk_size: int) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``spool`` from its start."""
    spool.seek(0)
    remaining = length
    while remaining:
        piece = spool.read(min(chunk_size, remaining))
        if not piece:
            return
        remaining -= len(piece)
        yield piece
