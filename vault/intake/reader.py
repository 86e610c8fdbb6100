"""Reading an upload in bounded chunks, counting every byte against the size limit."""

from typing import BinaryIO

from vault.errors import InvalidDocument
from vault.intake.limits import IntakeLimits, too_large


class LimitedReader:
    """A buffered reader over the upload that never holds more than about two chunks.

    Bytes are read from ``source`` ``chunk_size`` at a time and counted; the read that takes
    the count past ``max_bytes`` raises DocumentTooLarge, so at most ``max_bytes`` plus one
    chunk is ever read. Reads that need more bytes than the file has raise InvalidDocument
    with ``truncated_message``.
    """

    def __init__(self, source: BinaryIO, *, limits: IntakeLimits) -> None:
        self._source = source
        self._limits = limits
        self._buffer = bytearray()
        self._position = 0
        self._at_eof = False
        self.bytes_read = 0
        self.truncated_message = "the file is truncated"

    def _fill(self) -> bool:
        """Read one more chunk into the buffer; False at the end of the upload."""
        if self._at_eof:
            return False
        data = self._source.read(self._limits.chunk_size)
        if not data:
            self._at_eof = True
            return False
        self.bytes_read += len(data)
        if self.bytes_read > self._limits.max_bytes:
            raise too_large(self._limits)
        if self._position:  # drop what was consumed, so the buffer stays small
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += data
        return True

    @property
    def available(self) -> int:
        return len(self._buffer) - self._position

    def peek(self, size: int) -> bytes:
        """Up to ``size`` bytes ahead without consuming them (fewer only at the end)."""
        while self.available < size and self._fill():
            pass
        return bytes(self._buffer[self._position : self._position + size])

    def peek_buffered(self) -> bytes:
        """Whatever is buffered (reading a chunk first if nothing is); empty at the end."""
        if not self.available:
            self._fill()
        return bytes(self._buffer[self._position :])

    def consume(self, size: int) -> None:
        if size > self.available:
            raise ValueError("cannot consume more than is buffered")
        self._position += size

    def read_exact(self, size: int) -> bytes:
        data = self.peek(size)
        if len(data) < size:
            raise InvalidDocument(self.truncated_message)
        self._position += size
        return data

    def read_some(self, limit: int) -> bytes:
        """Between 1 and ``limit`` bytes, or empty at the end of the upload."""
        if not self.available and not self._fill():
            return b""
        data = bytes(self._buffer[self._position : self._position + limit])
        self._position += len(data)
        return data

    def skip(self, size: int) -> None:
        while size:
            piece = self.read_some(min(size, self._limits.chunk_size))
            if not piece:
                raise InvalidDocument(self.truncated_message)
            size -= len(piece)

    def at_end(self) -> bool:
        """True when nothing follows. Reads at most one more chunk to find out."""
        return not self.available and not self._fill()
