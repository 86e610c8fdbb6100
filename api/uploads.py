"""Streaming uploads: the request body flows from the event loop into ``store_document``, which
runs in a worker thread, through a small bounded queue. Memory stays constant whatever the size.

The event loop reads the body (raw, or the one file part of a multipart form parsed with
python-multipart's streaming ``MultipartParser``; nothing is spooled to disk here), coalesces it
into pieces of about 1 MiB and hands them to a :class:`QueueReader`, the file-like object the
worker reads. When the queue is full the loop stops reading the socket (back-pressure). Limits:
a declared Content-Length over the limit is refused before any body byte is read; a body that
turns out longer is refused as soon as the count passes the limit (intake enforces the same
limit on what it reads). A client that goes away mid-upload fails the worker's next read, so
``store_document`` unwinds and stores nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar, cast

import anyio
import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from api.metrics import count_upload
from vault.errors import InvalidDocument, UploadInterrupted, VaultError
from vault.intake.limits import IntakeLimits, too_large

T = TypeVar("T")

PIECE_SIZE = 1 << 20  # what the worker reads at a time (intake's chunk size)
QUEUE_PIECES = 4  # pieces in flight between the loop and the worker: ~4 MiB at most
MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and the small `kind` field
MAX_FIELD_BYTES = 64
MAX_FILENAME_CHARS = 200


class _ReaderGone(Exception):
    """The worker stopped reading (finished or failed): the loop stops feeding."""


class QueueReader:
    """A read-only file for the worker thread, fed with pieces by the event loop.

    ``read`` blocks the worker until a piece arrives; ``feed`` suspends the loop while the queue
    holds ``max_pieces``. ``fail`` makes the worker's next read raise the given error.
    """

    def __init__(self, *, max_pieces: int = QUEUE_PIECES) -> None:
        self._pieces: deque[bytes] = deque()
        self._max_pieces = max_pieces
        self._ready = threading.Condition()
        self._loop = asyncio.get_running_loop()
        self._space = asyncio.Event()
        self._ended = False
        self._error: BaseException | None = None
        self._closed = False

    # --- the event loop's side ---

    async def feed(self, piece: bytes) -> None:
        while True:
            with self._ready:
                if self._closed:
                    raise _ReaderGone
                if len(self._pieces) < self._max_pieces:
                    self._pieces.append(piece)
                    self._ready.notify()
                    return
                self._space.clear()  # under the lock: a wake-up sent after this is not lost
            await self._space.wait()

    def end(self) -> None:
        with self._ready:
            self._ended = True
            self._ready.notify()

    def fail(self, error: BaseException) -> None:
        with self._ready:
            if not self._ended and self._error is None:
                self._error = error
            self._ready.notify()

    # --- the worker's side ---

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (a whole piece when it fits); empty at the end of the body."""
        with self._ready:
            while not self._pieces and not self._ended and self._error is None:
                self._ready.wait()
            if self._error is not None:
                raise self._error
            if not self._pieces:
                return b""
            was_full = len(self._pieces) >= self._max_pieces
            piece = self._pieces.popleft()
            if 0 <= size < len(piece):
                self._pieces.appendleft(piece[size:])
                piece = piece[:size]
        if was_full:
            self._loop.call_soon_threadsafe(self._space.set)
        return piece

    def close(self) -> None:
        """The worker is done: wake the loop if it waits for space, and drop what is queued."""
        with self._ready:
            self._closed = True
            self._pieces.clear()
        self._loop.call_soon_threadsafe(self._space.set)


def refuse_declared_oversize(request: Request, limits: IntakeLimits, *, slack: int = 0) -> None:
    """413 before any body byte is read, when Content-Length already says it is too large."""
    value = request.headers.get("content-length", "")
    if value.isdigit() and int(value) > limits.max_bytes + slack:
        raise too_large(limits)


async def store_streamed(
    body: AsyncIterator[bytes], *, limits: IntakeLimits, store: Callable[[BinaryIO], T]
) -> T:
    """Run ``store(file)`` in a worker thread while ``body`` is fed into ``file``.

    More than ``limits.max_bytes`` of ``body`` raises DocumentTooLarge (413) in the worker; a
    client that disconnects or a body that ends early raises UploadInterrupted; an error of
    ``body`` itself (a malformed form) is raised as it is. The worker's result is returned.
    """
    reader = QueueReader()

    async def pump() -> None:
        try:
            received = 0
            pending: list[bytes] = []
            pending_size = 0
            async for chunk in body:
                received += len(chunk)
                count_upload(len(chunk))
                if received > limits.max_bytes:
                    reader.fail(too_large(limits))
                    return
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= PIECE_SIZE:
                    await reader.feed(b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await reader.feed(b"".join(pending))
            reader.end()
        except _ReaderGone:
            return
        except VaultError as error:
            reader.fail(error)
        finally:
            # Disconnected, cancelled or broken: the worker must never wait for more.
            reader.fail(UploadInterrupted("the upload ended before the file was complete"))

    def work() -> T:
        try:
            return store(cast(BinaryIO, reader))
        finally:
            reader.close()

    feeding = asyncio.ensure_future(pump())
    try:
        return await anyio.to_thread.run_sync(work)
    finally:
        feeding.cancel()  # still reading only if the worker stopped early (refused the file)
        await asyncio.gather(feeding, return_exceptions=True)


async def raw_body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; a client that goes away raises UploadInterrupted."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise UploadInterrupted("the upload ended before the file was complete") from None


@dataclass
class _Part:
    headers: dict[str, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None


class MultipartUpload:
    """The one file part of a ``multipart/form-data`` body, streamed; small fields before it.

    ``await open()`` reads until the file part's headers (fields such as ``kind`` must come
    before the file, as browsers send them in form order). Iterating then yields the file's
    bytes up to the end of its part. Parts after the file are not read.
    """

    def __init__(self, request: Request, *, limits: IntakeLimits, file_field: str = "file") -> None:
        content_type, options = parse_options_header(request.headers.get("content-type"))
        boundary = options.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise InvalidDocument("send the file as multipart/form-data with a boundary")
        self.fields: dict[str, str] = {}
        self._limits = limits
        self._max_body = limits.max_bytes + MULTIPART_OVERHEAD
        self._received = 0
        self.filename: str | None = None
        self._file_field = file_field
        self._chunks = request.stream().__aiter__()
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._field_value = bytearray()
        self._file_data: list[bytes] = []
        self._in_file = False
        self._file_done = False
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )

    async def open(self) -> None:
        """Read up to the file part; raises InvalidDocument when there is none."""
        while not (self._in_file or self._file_done):
            if not await self._write_next():
                raise InvalidDocument(f"the form has no `{self._file_field}` part")

    async def file_bytes(self) -> AsyncIterator[bytes]:
        while True:
            if self._file_data:
                data, self._file_data = self._file_data, []
                for piece in data:
                    yield piece
            if self._file_done:
                return
            if not await self._write_next():  # the body ended inside the file part
                raise UploadInterrupted("the upload ended before the file was complete")

    async def _write_next(self) -> bool:
        try:
            chunk = await anext(self._chunks, b"")
        except ClientDisconnect:
            raise UploadInterrupted("the upload ended before the file was complete") from None
        if not chunk:
            return False
        self._received += len(chunk)
        if self._received > self._max_body:
            raise too_large(self._limits)
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise InvalidDocument("the multipart form is malformed") from None
        return True

    # --- parser callbacks (called synchronously inside write) ---

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        name = bytes(self._header_field).decode("latin-1").strip().lower()
        self._part.headers[name] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get("content-disposition"))
        self._part.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        self._part.filename = None if filename is None else filename.decode("utf-8", "replace")
        if self._part.name == self._file_field and not self._file_done:
            self._in_file = True
            self.filename = self._part.filename

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._file_data.append(data[start:end])
        elif len(self._field_value) + (end - start) > MAX_FIELD_BYTES:
            raise InvalidDocument(f"the form field `{self._part.name}` is too long")
        else:
            self._field_value += data[start:end]

    def _on_part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_done = True
        elif not self._file_done:
            self.fields[self._part.name] = bytes(self._field_value).decode("utf-8", "replace")
        self._field_value.clear()


def safe_upload_name(name: str | None, *, default: str = "upload") -> str:
    """The last path component of an uploaded file's name, without control characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:MAX_FILENAME_CHARS] or default
