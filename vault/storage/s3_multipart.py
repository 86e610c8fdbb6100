"""One S3 multipart upload whose parts go out on a background thread.

The producer (S3BlobStore.put, driven by the encryptor) hands over full parts; one thread sends
them in order. At most two parts are handed over at a time (one on the wire, one waiting), so
the encryption of the next part overlaps the network and memory stays at about three parts.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
import zlib
from typing import TYPE_CHECKING, Final

from botocore.exceptions import ClientError

from vault.storage.s3_errors import UNAVAILABLE_ERRORS, error_code, s3_errors

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MAX_PARTS = 10_000  # S3's limit per upload
PARTS_IN_FLIGHT = 2
CHECKSUM_ALGORITHM: Final = "CRC32"  # zlib-fast without awscrt; moto, MinIO and AWS all accept it

logger = logging.getLogger(__name__)


class Part:
    """A part being filled: a buffer allocated once at full size, and the CRC32 of its bytes.

    The checksum is computed as the bytes are copied in (while they are still in the CPU cache)
    and handed to botocore, which then skips its own, slower pass over the body.
    """

    __slots__ = ("_buffer", "_crc32", "_filled")

    def __init__(self, size: int) -> None:
        self._buffer = bytearray(size)
        self._filled = 0
        self._crc32 = 0

    def is_full(self) -> bool:
        return self._filled == len(self._buffer)

    def fill(self, data: memoryview) -> memoryview:
        """Copy as much of ``data`` as fits; return what did not fit."""
        take = min(len(data), len(self._buffer) - self._filled)
        piece = data[:take]
        self._buffer[self._filled : self._filled + take] = piece
        self._crc32 = zlib.crc32(piece, self._crc32)
        self._filled += take
        return data[take:]

    def body(self) -> bytearray:
        """The bytes filled so far (the buffer itself, trimmed: no copy of a full part)."""
        del self._buffer[self._filled :]
        return self._buffer

    def checksum(self) -> str:
        """CRC32 in S3's notation: base64 of the big-endian value."""
        return base64.b64encode(self._crc32.to_bytes(4, "big")).decode("ascii")


class MultipartUpload:
    """Parts in, one object out: ``submit`` each part, then ``complete``, or ``abort``.

    Not thread-safe: one producer thread calls ``submit``, ``complete`` and ``abort``.
    """

    def __init__(self, client: S3Client, bucket: str, key: str, upload_id: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._upload_id = upload_id
        self._submitted = 0
        self._parts: list[CompletedPartTypeDef] = []
        # One waiting in the queue plus one taken by the sender = PARTS_IN_FLIGHT.
        self._queue: queue.Queue[Part | None] = queue.Queue(maxsize=PARTS_IN_FLIGHT - 1)
        self._error: BaseException | None = None
        self._cancelled = False
        self._stopped = False
        self._sender = threading.Thread(target=self._send_parts, name="s3-parts", daemon=True)
        self._sender.start()

    @classmethod
    def start(cls, client: S3Client, bucket: str, key: str) -> MultipartUpload:
        with s3_errors("CreateMultipartUpload"):
            created = client.create_multipart_upload(
                Bucket=bucket, Key=key, ChecksumAlgorithm=CHECKSUM_ALGORITHM
            )
        return cls(client, bucket, key, created["UploadId"])

    def submit(self, part: Part) -> None:
        """Queue the next part; blocks while two parts are in flight. Raises a failed send."""
        self._raise_failure()
        if self._submitted == MAX_PARTS:
            raise ValueError("object too large for S3's 10,000 parts: raise the part size")
        self._submitted += 1
        self._queue.put(part)

    def complete(self) -> None:
        """Wait for every part, then make the object visible."""
        self._stop()
        self._raise_failure()
        with s3_errors("CompleteMultipartUpload"):
            self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )

    def abort(self) -> None:
        """Drop every part sent so far, best effort.

        A failure here is logged, never raised, so that the caller sees the error that made it
        abort. S3BlobStore.abort_incomplete_uploads is the safety net for an abort that failed.
        """
        self._cancelled = True
        self._stop()
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
            )
        except ClientError as exc:
            if error_code(exc) != "NoSuchUpload":  # NoSuchUpload: nothing left to abort
                logger.warning("multipart upload abort failed (%s)", error_code(exc))
        except UNAVAILABLE_ERRORS as exc:
            logger.warning("multipart upload abort failed (%s)", type(exc).__name__)

    def _stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)  # never blocks for long: the sender drains after a failure
            self._sender.join()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _send_parts(self) -> None:
        number = 0
        while True:
            part = self._queue.get()
            if part is None:
                return
            number += 1
            if self._error is None and not self._cancelled:
                self._send(number, part)
            del part  # let the sent part go before waiting for the next one

    def _send(self, number: int, part: Part) -> None:
        try:
            with s3_errors("UploadPart"):
                sent = self._client.upload_part(
                    Bucket=self._bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    PartNumber=number,
                    Body=part.body(),  # type: ignore[arg-type]  # botocore takes bytearray
                    ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                    ChecksumCRC32=part.checksum(),
                )
        except BaseException as exc:  # noqa: BLE001 - handed to the producer, which raises it
            self._error = exc
            return
        completed: CompletedPartTypeDef = {"PartNumber": number, "ETag": sent["ETag"]}
        if "ChecksumCRC32" in sent:
            completed["ChecksumCRC32"] = sent["ChecksumCRC32"]
        self._parts.append(completed)
