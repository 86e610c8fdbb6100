"""S3BlobStore: objects in an S3 bucket (AWS S3, MinIO, or any store that speaks S3).

Uploads stream: chunks are gathered into parts of ``part_size`` bytes and sent with a multipart
upload while the caller (the encryptor) produces the next part, so memory stays at about three
parts whatever the object's size. An object no larger than one part goes in one PutObject.
Every body carries a CRC32 checksum the store verifies.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from vault.errors import NotFound, StorageUnavailable
from vault.storage.interfaces import ListedObject
from vault.storage.object_keys import check_key, check_prefix
from vault.storage.s3_errors import UNAVAILABLE_ERRORS, error_code, s3_errors, unavailable
from vault.storage.s3_multipart import CHECKSUM_ALGORITHM, MultipartUpload, Part

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import GetObjectOutputTypeDef, ObjectIdentifierTypeDef

MIB = 1024 * 1024
MIN_PART_SIZE = 5 * MIB  # S3's floor for every part but the last
MAX_PART_SIZE = 5 * 1024 * MIB
DEFAULT_PART_SIZE = 8 * MIB
DEFAULT_ATTEMPTS = 3  # tries of a call, the first included (make_s3_client's default)
# How long a download cut mid-way keeps trying to pick up where it broke. Its 200 is already
# answered, so giving up cuts the client's download: worth waiting out a short outage for.
DEFAULT_RESUME_SECONDS = 15.0
_RESUME_PAUSES = (0.25, 0.5, 1.0, 2.0)  # between tries of a resume; the last one repeats
_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys per request
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_NO_BUCKET_CODES = frozenset({"NoSuchBucket", "NotFound", "404"})


def make_s3_client(
    *,
    endpoint_url: str | None,
    region: str,
    max_attempts: int = DEFAULT_ATTEMPTS,
    connect_timeout: float = 10.0,
    read_timeout: float = 10.0,
) -> S3Client:
    """An S3 client configured the way the store needs it (tests pass tighter limits).

    ``max_attempts`` counts every try of a call, the first included: with the default 3, a part
    whose connection drops mid-way is sent again, and only a store that stays away fails the put.
    """
    config = Config(
        region_name=region,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        request_checksum_calculation="when_supported",
        response_checksum_validation="when_supported",
        # MinIO and moto serve every bucket on one host name: bucket in the path, not the host.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    # A session of our own: boto3's default session is not safe to share between threads.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3BlobStore:
    """A BlobStore on one S3 bucket. Thread-safe (boto3 clients are)."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        part_size: int = DEFAULT_PART_SIZE,
        client: S3Client | None = None,
        resume_seconds: float = DEFAULT_RESUME_SECONDS,
    ) -> None:
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError("part_size must be between 5 MiB and 5 GiB (S3's limits)")
        self.bucket = bucket
        self.part_size = part_size
        self._client = client or make_s3_client(endpoint_url=endpoint_url, region=region)
        self._region = region
        self._resume_seconds = resume_seconds

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Upload all or nothing; see BlobStore.put. Chunk-iterator errors propagate unchanged.

        One corner S3 leaves open: if the connection drops after the store completed the upload
        but before its answer arrives, put raises StorageUnavailable although the object exists.
        Callers that treat a failed put as "nothing stored" should delete the key, as they do for
        any failure after put.
        """
        check_key(key)
        part = Part(self.part_size)
        size = 0
        upload: MultipartUpload | None = None
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                size += len(view)
                while view:
                    if part.is_full():  # and more data behind it: send it
                        upload = upload or MultipartUpload.start(self._client, self.bucket, key)
                        upload.submit(part)
                        part = Part(self.part_size)
                    view = part.fill(view)
            if upload is None:
                with s3_errors("PutObject"):
                    self._client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=part.body(),  # type: ignore[arg-type]  # botocore takes bytearray
                        ChecksumAlgorithm=CHECKSUM_ALGORITHM,
                        ChecksumCRC32=part.checksum(),
                    )
            else:
                upload.submit(part)
                upload.complete()
        except BaseException:  # even KeyboardInterrupt: an open upload would be billed forever
            if upload is not None:
                upload.abort()
            raise
        return size

    def open(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        check_key(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
                raise NotFound("no object under this key") from None
            raise unavailable("GetObject", exc) from None
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable("GetObject", exc) from None
        return self._stream(key, response, chunk_size)

    def delete(self, key: str) -> None:
        """Delete every version and delete marker of ``key`` (on an unversioned bucket: the one)."""
        check_key(key)
        with s3_errors("ListObjectVersions"):
            versions = list(self._versions_of(key))
        for start in range(0, len(versions), _DELETE_BATCH):
            batch = versions[start : start + _DELETE_BATCH]
            with s3_errors("DeleteObjects"):
                result = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if result.get("Errors"):
                code = result["Errors"][0].get("Code", "error")
                raise StorageUnavailable(f"object store refused DeleteObjects ({code})")

    def exists(self, key: str) -> bool:
        check_key(key)
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
                return False
            raise unavailable("HeadObject", exc) from None
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable("HeadObject", exc) from None
        return True

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, sorted (S3 lists in key order)."""
        check_prefix(prefix)
        return (listed.key for listed in self._list(prefix))

    def listing(self, prefix: str = "") -> Iterator[ListedObject]:
        """Every object under ``prefix`` with its LastModified, in key order."""
        check_prefix(prefix)
        return self._list(prefix)

    def check(self) -> None:
        with s3_errors("HeadBucket"):
            self._client.head_bucket(Bucket=self.bucket)

    def abort_incomplete_uploads(self, *, older_than: datetime) -> int:
        """Abort multipart uploads started before ``older_than``; return how many were aborted.

        The cleanup for a process that died between starting an upload and aborting it (or whose
        abort failed too). Choose ``older_than`` well before any upload still running could
        have started. A bucket lifecycle rule (AbortIncompleteMultipartUpload) does the same.
        """
        if older_than.tzinfo is None:
            raise ValueError("older_than must be timezone-aware")
        aborted = 0
        paginator = self._client.get_paginator("list_multipart_uploads")
        with s3_errors("ListMultipartUploads"):
            pages = list(paginator.paginate(Bucket=self.bucket))
        for page in pages:
            for upload in page.get("Uploads", []):
                if upload["Initiated"] >= older_than:
                    continue
                try:
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                except ClientError as exc:
                    if error_code(exc) == "NoSuchUpload":
                        continue  # completed or aborted meanwhile
                    raise unavailable("AbortMultipartUpload", exc) from None
                except UNAVAILABLE_ERRORS as exc:
                    raise unavailable("AbortMultipartUpload", exc) from None
                aborted += 1
        return aborted

    def ensure_bucket(self, *, versioning: bool) -> None:
        """Create the bucket if it is missing; with ``versioning``, switch versioning on.

        ``versioning=False`` leaves an existing bucket's versioning as it is. For tests and the
        development bootstrap; production buckets are provisioned by infrastructure code.
        """
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc) not in _NO_BUCKET_CODES:
                raise unavailable("HeadBucket", exc) from None
            self._create_bucket()
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable("HeadBucket", exc) from None
        if versioning:
            with s3_errors("PutBucketVersioning"):
                self._client.put_bucket_versioning(
                    Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
                )

    def _create_bucket(self) -> None:
        try:
            if self._region == "us-east-1":  # the one region that refuses a LocationConstraint
                self._client.create_bucket(Bucket=self.bucket)
            else:
                self._client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": self._region},  # type: ignore[typeddict-item]
                )
        except ClientError as exc:
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise unavailable("CreateBucket", exc) from None
        except UNAVAILABLE_ERRORS as exc:
            raise unavailable("CreateBucket", exc) from None

    def _versions_of(self, key: str) -> Iterator[ObjectIdentifierTypeDef]:
        paginator = self._client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
            listed = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            for entry in listed:
                if entry["Key"] == key:  # the prefix also matches longer keys
                    yield {"Key": key, "VersionId": entry["VersionId"]}
            if any(entry["Key"] > key for entry in listed):
                return  # listed in key order: nothing of ours follows

    def _stream(
        self, key: str, response: GetObjectOutputTypeDef, chunk_size: int
    ) -> Iterator[bytes]:
        """The object's bytes. A connection lost mid-way is picked up where it broke, with a
        ranged GET of the same object (If-Match its ETag), tried again until the stream has
        stood still for ``resume_seconds``; then, or if the object changed, StorageUnavailable.

        botocore retries the GET itself but not the reading of its body, which is most of a
        download: without this, a connection cut a few MiB into a document ended the download
        half-way, after its 200 had already been answered (found by the fault suite, which
        then also found that a few retries do not outlast an outage of a few seconds).
        """
        body: StreamingBody = response["Body"]
        etag, size = response.get("ETag"), response.get("ContentLength")
        received = 0
        stalled_since: float | None = None  # when the stream broke, if no byte came since
        try:
            while size is None or received < size:
                try:
                    chunk = body.read(chunk_size)
                except UNAVAILABLE_ERRORS as exc:
                    body.close()
                    stalled_since = stalled_since or time.monotonic()
                    give_up_at = stalled_since + self._resume_seconds
                    body = self._resumed(
                        key, etag=etag, offset=received, give_up_at=give_up_at, cause=exc
                    )
                    continue
                if not chunk:
                    return
                stalled_since = None
                received += len(chunk)
                yield chunk
        finally:
            body.close()

    def _resumed(
        self, key: str, *, etag: str | None, offset: int, give_up_at: float, cause: Exception
    ) -> StreamingBody:
        """The body of the object from ``offset`` on, if it is still the same object, tried
        with growing pauses until ``give_up_at`` (a monotonic time)."""
        rest = f"bytes={offset}-"
        for pause in itertools.chain(_RESUME_PAUSES, itertools.repeat(_RESUME_PAUSES[-1])):
            if time.monotonic() + pause > give_up_at:
                raise unavailable("GetObject", cause) from None
            time.sleep(pause)
            try:
                if etag is None:
                    resumed = self._client.get_object(Bucket=self.bucket, Key=key, Range=rest)
                else:
                    resumed = self._client.get_object(
                        Bucket=self.bucket, Key=key, Range=rest, IfMatch=etag
                    )
                return resumed["Body"]
            except UNAVAILABLE_ERRORS as exc:
                if isinstance(exc, ClientError) and error_code(exc) == "PreconditionFailed":
                    raise unavailable("GetObject", exc) from None  # the object changed
                cause = exc
        raise AssertionError("unreachable: the pauses never end")

    def _list(self, prefix: str) -> Iterator[ListedObject]:
        paginator = self._client.get_paginator("list_objects_v2")
        with s3_errors("ListObjectsV2"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ListedObject(item["Key"], item["LastModified"])
