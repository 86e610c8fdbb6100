"""S3BlobStore without a moto server: against the S3 sink, a scripted fake client, and Stubber.

These pin what moto cannot show: how the stream is cut into parts and checksummed, that the
upload thread holds back the producer (memory stays bounded), that a failed part stops the
upload early, and that abort_incomplete_uploads spares recent uploads. The shared contract is in
tests/integration/test_blob_stores.py; connection faults in tests/integration/test_s3_faults.py.
"""

from __future__ import annotations

import base64
import threading
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber

from tests.perf.s3_sink import S3Sink
from vault.clock import utcnow
from vault.errors import NotFound, StorageUnavailable
from vault.storage.s3 import S3BlobStore, make_s3_client
from vault.storage.s3_multipart import Part

MIB = 1024 * 1024
PART = 5 * MIB
REGION = "eu-central-1"


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def pattern(size: int) -> bytes:
    return bytes(range(251)) * (size // 251) + bytes(range(size % 251))


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


# -- against the sink --------------------------------------------------------------------------


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[S3Sink]:
    serve = tmp_path / "serve"
    serve.mkdir()
    with S3Sink(serve) as running:
        yield running


@pytest.fixture
def sink_store(sink: S3Sink) -> S3BlobStore:
    return S3BlobStore(bucket="bench", endpoint_url=sink.url, region=REGION, part_size=PART)


def test_put_cuts_the_stream_into_checksummed_parts(sink: S3Sink, sink_store: S3BlobStore) -> None:
    data = pattern(2 * PART + 12345)

    written = sink_store.put("cases/c1/doc", chunked(data, 777_777))

    assert written == len(data)
    parts = [data[:PART], data[PART : 2 * PART], data[2 * PART :]]
    assert sink.objects["cases/c1/doc"] == [(len(p), crc32_b64(p)) for p in parts]
    assert sink.bytes_received == len(data)
    assert sink.operations["CreateMultipartUpload"] == 1
    assert sink.operations["CompleteMultipartUpload"] == 1
    assert sink.operations["PutObject"] == 0
    assert sink.open_uploads == 0


@pytest.mark.parametrize("size", [0, 1, PART], ids=["empty", "1B", "exactly-one-part"])
def test_an_object_of_at_most_one_part_goes_in_one_put(
    sink: S3Sink, sink_store: S3BlobStore, size: int
) -> None:
    data = pattern(size)

    sink_store.put("doc", chunked(data, MIB))

    assert sink.objects["doc"] == [(size, crc32_b64(data))]
    assert sink.operations["PutObject"] == 1
    assert sink.operations["CreateMultipartUpload"] == 0


def test_open_streams_what_the_sink_serves(sink: S3Sink, sink_store: S3BlobStore) -> None:
    data = pattern(3 * MIB + 5)
    (sink.serve_dir / "cases").mkdir()
    (sink.serve_dir / "cases" / "doc").write_bytes(data)

    chunks = list(sink_store.open("cases/doc", chunk_size=MIB))

    assert b"".join(chunks) == data
    assert [len(c) for c in chunks] == [MIB, MIB, MIB, 5]
    with pytest.raises(NotFound):
        sink_store.open("cases/missing")


def test_check_and_exists_against_the_sink(sink: S3Sink, sink_store: S3BlobStore) -> None:
    (sink.serve_dir / "there").write_bytes(b"x")

    sink_store.check()

    assert sink_store.exists("there")
    assert not sink_store.exists("not-there")


def test_part_checksum_matches_crc32_of_its_bytes() -> None:
    part = Part(10)
    rest = part.fill(memoryview(b"hello"))
    rest = part.fill(memoryview(b" world, and more"))

    assert part.is_full()
    assert bytes(rest) == b"d, and more"
    assert bytes(part.body()) == b"hello worl"
    assert part.checksum() == crc32_b64(b"hello worl")


# -- a scripted client -------------------------------------------------------------------------


class FakeS3:
    """Just the multipart calls, scripted: parts can block or fail, and so can abort."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()
        self.part_started = threading.Event()
        self.part_error: Exception | None = None
        self.abort_error: Exception | None = None
        self.parts: list[int] = []
        self.aborted = 0
        self.completed = 0

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        return {"UploadId": "upload-1"}

    def upload_part(self, **kwargs: Any) -> dict[str, Any]:
        self.part_started.set()
        self.release.wait(10)
        if self.part_error is not None:
            raise self.part_error
        self.parts.append(len(kwargs["Body"]))
        return {"ETag": f'"{kwargs["PartNumber"]}"', "ChecksumCRC32": kwargs["ChecksumCRC32"]}

    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        assert [p["PartNumber"] for p in kwargs["MultipartUpload"]["Parts"]] == list(
            range(1, len(self.parts) + 1)
        )
        self.completed += 1
        return {}

    def abort_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self.aborted += 1
        if self.abort_error is not None:
            raise self.abort_error
        return {}


def fake_store(fake: FakeS3) -> S3BlobStore:
    return S3BlobStore(
        bucket="b", endpoint_url=None, region=REGION, part_size=PART, client=cast(Any, fake)
    )


class Tally:
    """A chunk source that counts how much of it the store has pulled."""

    def __init__(self, total: int, chunk: int = MIB) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    def __iter__(self) -> Iterator[bytes]:
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield bytes(self.chunk)


def test_the_producer_waits_while_two_parts_are_in_flight() -> None:
    fake = FakeS3()
    fake.release.clear()  # the network is stuck
    source = Tally(total=20 * PART)
    store = fake_store(fake)
    putter = threading.Thread(target=store.put, args=("doc", source))

    putter.start()
    assert fake.part_started.wait(10)
    putter.join(0.5)  # ample time to pull everything if nothing held the producer back
    pulled_while_stuck = source.pulled
    fake.release.set()
    putter.join(30)

    # one part on the wire, one queued, one being filled, and the chunk that did not fit
    assert pulled_while_stuck <= 3 * PART + MIB
    assert not putter.is_alive()
    assert fake.parts == [PART] * 20
    assert fake.completed == 1


def test_a_failed_part_stops_the_upload_early_and_aborts_it() -> None:
    fake = FakeS3()
    fake.part_error = EndpointConnectionError(endpoint_url="http://s3.example/bucket/doc")
    source = Tally(total=50 * PART)

    with pytest.raises(StorageUnavailable, match=r"UploadPart \(EndpointConnectionError\)") as err:
        fake_store(fake).put("cases/c1/doc", source)

    assert source.pulled <= 4 * PART + MIB  # it did not encrypt 250 MiB for nothing
    assert fake.aborted == 1
    assert fake.completed == 0
    assert "s3.example" not in str(err.value)
    assert "cases/c1/doc" not in str(err.value)
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__


def test_when_abort_fails_too_the_original_error_is_raised() -> None:
    fake = FakeS3()
    fake.part_error = EndpointConnectionError(endpoint_url="http://s3.example")
    fake.abort_error = EndpointConnectionError(endpoint_url="http://s3.example")

    with pytest.raises(StorageUnavailable, match="UploadPart"):
        fake_store(fake).put("doc", Tally(total=3 * PART))

    assert fake.aborted == 1


def test_a_failing_chunk_iterator_propagates_even_when_abort_fails() -> None:
    fake = FakeS3()
    fake.abort_error = EndpointConnectionError(endpoint_url="http://s3.example")

    def chunks() -> Iterator[bytes]:
        yield bytes(2 * PART + 1)
        raise LookupError("the caller's own error")

    with pytest.raises(LookupError, match="caller's own"):
        fake_store(fake).put("doc", chunks())

    assert fake.aborted == 1


def test_part_size_must_fit_s3_limits() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3BlobStore(bucket="b", endpoint_url=None, region=REGION, part_size=PART - 1)


# -- abort_incomplete_uploads, with botocore's Stubber -----------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[S3BlobStore, Stubber]]:
    client = make_s3_client(endpoint_url="http://127.0.0.1:9", region=REGION)
    store = S3BlobStore(bucket="b", endpoint_url=None, region=REGION, client=client)
    with Stubber(client) as stubber:
        yield store, stubber
        stubber.assert_no_pending_responses()


def upload(key: str, upload_id: str, initiated: datetime) -> dict[str, Any]:
    return {"Key": key, "UploadId": upload_id, "Initiated": initiated}


def test_abort_incomplete_uploads_spares_recent_ones(
    stubbed: tuple[S3BlobStore, Stubber],
) -> None:
    store, stubber = stubbed
    now = utcnow()
    uploads = [
        upload("old", "u1", now - timedelta(days=2)),
        upload("gone-meanwhile", "u2", now - timedelta(days=2)),
        upload("running", "u3", now - timedelta(minutes=5)),
    ]
    stubber.add_response("list_multipart_uploads", {"Uploads": uploads}, {"Bucket": "b"})
    stubber.add_response(
        "abort_multipart_upload", {}, {"Bucket": "b", "Key": "old", "UploadId": "u1"}
    )
    stubber.add_client_error(
        "abort_multipart_upload",
        service_error_code="NoSuchUpload",
        expected_params={"Bucket": "b", "Key": "gone-meanwhile", "UploadId": "u2"},
    )

    aborted = store.abort_incomplete_uploads(older_than=now - timedelta(days=1))

    assert aborted == 1


def test_abort_incomplete_uploads_wants_an_aware_time(
    stubbed: tuple[S3BlobStore, Stubber],
) -> None:
    store, _stubber = stubbed

    with pytest.raises(ValueError, match="timezone"):
        store.abort_incomplete_uploads(older_than=datetime(2030, 1, 1))


def test_a_refused_delete_is_storage_unavailable(stubbed: tuple[S3BlobStore, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_response(
        "list_object_versions",
        {"Versions": [{"Key": "doc", "VersionId": "v1"}]},
        {"Bucket": "b", "Prefix": "doc"},
    )
    stubber.add_response(
        "delete_objects",
        {"Errors": [{"Key": "doc", "VersionId": "v1", "Code": "AccessDenied"}]},
    )

    with pytest.raises(StorageUnavailable, match="AccessDenied"):
        store.delete("doc")


def test_a_client_error_message_never_carries_the_key(
    stubbed: tuple[S3BlobStore, Stubber],
) -> None:
    store, stubber = stubbed
    stubber.add_client_error(
        "get_object",
        service_error_code="AccessDenied",
        service_message="Access Denied for cases/c1/doc",
    )

    with pytest.raises(StorageUnavailable) as raised:
        store.open("cases/c1/doc")

    assert str(raised.value) == "object store unavailable during GetObject (AccessDenied)"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__  # the ClientError, with the key, is not shown
