"""Writing an extract: rows to Parquet and CSV, each encrypted and uploaded as it is written.

``BlobStore.put`` pulls chunks while pyarrow and the csv module push them, so each object is
uploaded in its own thread fed through a small bounded queue (``EncryptedUpload``): at most
``QUEUE_PIECES`` pieces of ``PIECE_SIZE`` bytes wait per object, whatever the extract's size.
"""

import csv
import io
import queue
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vault.crypto.envelope import EnvelopeEncryptor
from vault.storage.interfaces import BlobStore

PIECE_SIZE = 1024 * 1024
QUEUE_PIECES = 4
_POLL_SECONDS = 0.5


class _End:
    pass


class _Abort:
    pass


class UploadAborted(Exception):
    """Raised inside the upload's chunk iterator so the store discards the partial object."""


class EncryptedUpload:
    """A file-like sink: what is written is encrypted and stored under ``key`` by a thread.

    ``finish`` returns once the object is complete and visible; ``abort`` makes the store
    discard it. An error in the upload thread is raised again by the next ``write``/``finish``.
    """

    def __init__(self, store: BlobStore, key: str, encryptor: EnvelopeEncryptor) -> None:
        self.key = key
        self.wrapped_dek = encryptor.wrapped_dek
        self._queue: queue.Queue[bytes | _End | _Abort] = queue.Queue(maxsize=QUEUE_PIECES)
        self._buffer = bytearray()
        self._written = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(store, encryptor), name="extract-upload", daemon=True
        )
        self._thread.start()

    # -- the file-like side (pyarrow and csv write here) ---------------------------------------

    closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        self._written += len(data)
        if len(self._buffer) >= PIECE_SIZE:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        """Nothing to do: pieces leave when full, the rest at ``finish``."""

    def finish(self) -> None:
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        self._send(_End())
        self._thread.join()
        self._raise_error()

    def abort(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(_Abort(), timeout=_POLL_SECONDS)
                break
            except queue.Full:
                continue  # the thread is still draining pieces; it takes the abort next
        self._thread.join()

    # -- the thread ----------------------------------------------------------------------------

    def _run(self, store: BlobStore, encryptor: EnvelopeEncryptor) -> None:
        try:
            store.put(self.key, encryptor.encrypt(self._pieces()))
        except Exception as exc:  # noqa: BLE001 - handed to the writing thread, which raises it
            self._error = exc

    def _pieces(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Abort):
                raise UploadAborted()
            yield item

    def _send(self, item: bytes | _End) -> None:
        while True:
            self._raise_error()
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    self._raise_error()
                    raise UploadAborted() from None

    def _raise_error(self) -> None:
        if self._error is not None and not isinstance(self._error, UploadAborted):
            raise self._error


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType


class TableWriter:
    """Writes batches of rows (dicts of column -> value) to Parquet and CSV uploads at once."""

    def __init__(
        self, columns: Sequence[Column], *, parquet: EncryptedUpload, csv_upload: EncryptedUpload
    ) -> None:
        self._names = [column.name for column in columns]
        self._schema = pa.schema([(column.name, column.type) for column in columns])
        self._parquet_upload = parquet
        self._parquet = pq.ParquetWriter(parquet, self._schema, compression="zstd")
        self._csv_upload = csv_upload
        self._text = io.StringIO()
        self._csv = csv.writer(self._text, lineterminator="\n")
        self._csv.writerow(self._names)
        self._flush_csv()

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        arrays = [
            pa.array([row[name] for row in rows], type=field.type)
            for name, field in zip(self._names, self._schema, strict=True)
        ]
        self._parquet.write_batch(pa.record_batch(arrays, schema=self._schema))
        self._csv.writerows(
            [["" if row[n] is None else row[n] for n in self._names] for row in rows]
        )
        self._flush_csv()

    def finish(self) -> None:
        self._parquet.close()  # writes the footer into the sink (it does not close it)
        self._parquet_upload.finish()
        self._csv_upload.finish()

    def abort(self) -> None:
        self._parquet_upload.abort()
        self._csv_upload.abort()

    def _flush_csv(self) -> None:
        self._csv_upload.write(self._text.getvalue().encode())
        self._text.seek(0)
        self._text.truncate()


def object_id_for(build_id: uuid.UUID, fmt: str) -> uuid.UUID:
    """The envelope object id of one output of one build (derived: nothing more to store)."""
    return uuid.uuid5(build_id, fmt)
