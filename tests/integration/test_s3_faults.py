"""S3BlobStore when the connection to the store is cut, down or slow: FaultProxy in front of moto.

What is checked afterwards is checked with a direct client, not through the proxy. The stores
under test make one attempt per call (``max_attempts=1``) and do not resume a cut download, so
that a single cut is a failure; two tests show that the default configuration rides out that
same cut, and a download an outage of a few seconds after it.
The last section tests FaultProxy itself against a plain TCP server.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.faultproxy import FaultProxy
from vault.clock import utcnow
from vault.errors import StorageUnavailable
from vault.storage.s3 import DEFAULT_RESUME_SECONDS, S3BlobStore, make_s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
PART = 5 * MIB
REGION = "eu-central-1"
DATA = random.Random(5).randbytes(3 * PART + 12345)  # four parts
KEY = "cases/c1/doc"
CUTS = 6


def chunked(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def proxy_to(url: str) -> FaultProxy:
    target = urlsplit(url)
    return FaultProxy(target.hostname or "127.0.0.1", target.port or 80)


def store_via(
    proxy: FaultProxy,
    bucket: str,
    *,
    attempts: int = 1,
    read_timeout: float = 10.0,
    resume_seconds: float = 0.0,
) -> S3BlobStore:
    client = make_s3_client(
        endpoint_url=proxy.url,
        region=REGION,
        max_attempts=attempts,
        connect_timeout=2.0,
        read_timeout=read_timeout,
    )
    return S3BlobStore(
        bucket=bucket,
        endpoint_url=proxy.url,
        region=REGION,
        part_size=PART,
        client=client,
        resume_seconds=resume_seconds,
    )


def new_bucket(direct: S3Client, moto_url: str) -> str:
    name = f"faults-{uuid.uuid4().hex[:12]}"
    S3BlobStore(bucket=name, endpoint_url=moto_url, region=REGION, client=direct).ensure_bucket(
        versioning=True
    )
    return name


def stored_versions(direct: S3Client, bucket: str, key: str) -> int:
    listed = direct.list_object_versions(Bucket=bucket, Prefix=key)
    entries = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
    return sum(entry["Key"] == key for entry in entries)


def open_uploads(direct: S3Client, bucket: str) -> list[str]:
    return [u["Key"] for u in direct.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


@contextmanager
def fake_credentials() -> Iterator[None]:
    """For module-scoped fixtures, set up before conftest's per-test fake credentials."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        yield


@pytest.fixture(scope="module")
def direct(moto_url: str) -> S3Client:
    with fake_credentials():  # a client resolves its credentials when it is made
        return make_s3_client(endpoint_url=moto_url, region=REGION)


@pytest.fixture
def bucket(direct: S3Client, moto_url: str) -> str:
    return new_bucket(direct, moto_url)


@pytest.fixture
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    with proxy_to(moto_url) as running:
        yield running


@pytest.fixture(scope="module")
def upload_bytes(direct: S3Client, moto_url: str) -> int:
    """How many bytes a put of DATA sends client->server: the range the cuts are drawn from."""
    bucket = new_bucket(direct, moto_url)
    with fake_credentials(), proxy_to(moto_url) as proxy:
        store_via(proxy, bucket).put(KEY, chunked(DATA))
        return proxy.bytes_upstream


def cut_offsets(total: int) -> list[int]:
    """Inside CreateMultipartUpload, four random offsets, and inside CompleteMultipartUpload."""
    middle = sorted(random.Random(20240611).sample(range(1000, total - 1000), CUTS - 2))
    return [100, *middle, total - 200]


# -- cuts --------------------------------------------------------------------------------------


@pytest.mark.moto
@pytest.mark.parametrize("which", range(CUTS))
def test_a_cut_mid_upload_fails_the_put_and_leaves_nothing(
    which: int, upload_bytes: int, proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    store = store_via(proxy, bucket)
    proxy.cut_after(cut_offsets(upload_bytes)[which])

    with pytest.raises(StorageUnavailable):
        store.put(KEY, chunked(DATA))

    assert proxy.cuts == 1
    assert stored_versions(direct, bucket, KEY) == 0
    assert open_uploads(direct, bucket) == []


@pytest.mark.moto
def test_the_default_retries_ride_out_a_single_cut(
    moto_url: str, upload_bytes: int, proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    store = S3BlobStore(bucket=bucket, endpoint_url=proxy.url, region=REGION, part_size=PART)
    proxy.cut_after(upload_bytes // 2)

    store.put(KEY, chunked(DATA))

    assert proxy.cuts == 1
    assert direct.get_object(Bucket=bucket, Key=KEY)["Body"].read() == DATA
    assert open_uploads(direct, bucket) == []


@pytest.mark.moto
def test_when_the_abort_fails_too_the_cleanup_job_removes_the_upload(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    store = store_via(proxy, bucket)
    proxy.cut_after(PART + PART // 2, then_down=True)  # in the second part; abort cannot pass

    with pytest.raises(StorageUnavailable, match="UploadPart"):  # the cause, not the abort
        store.put(KEY, chunked(DATA))

    assert open_uploads(direct, bucket) == [KEY]
    assert stored_versions(direct, bucket, KEY) == 0
    proxy.up()
    # moto reports every upload as initiated in 2010, so "before now" selects this one
    assert store.abort_incomplete_uploads(older_than=utcnow()) == 1
    assert open_uploads(direct, bucket) == []


@pytest.mark.moto
def test_a_download_cut_mid_stream_is_storage_unavailable(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    direct.put_object(Bucket=bucket, Key=KEY, Body=DATA[: 3 * MIB])
    store = store_via(proxy, bucket)
    proxy.cut_after(MIB, direction="downstream")

    received: list[bytes] = []
    with pytest.raises(StorageUnavailable, match="GetObject"):
        received.extend(store.open(KEY, chunk_size=64 * 1024))

    assert 0 < len(b"".join(received)) < 3 * MIB
    assert proxy.cuts == 1


@pytest.mark.moto
def test_the_default_retries_resume_a_download_cut_mid_stream(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    """Found by the fault suite (tests/faults): botocore retries a GET but not the reading of
    its body, so a document download cut a few MiB in ended half-way after its 200. The store
    now picks the object up where it broke (a ranged GET, If-Match its ETag)."""
    direct.put_object(Bucket=bucket, Key=KEY, Body=DATA[: 3 * MIB])
    store = store_via(proxy, bucket, attempts=3, resume_seconds=DEFAULT_RESUME_SECONDS)
    proxy.cut_after(MIB, direction="downstream")

    received = b"".join(store.open(KEY, chunk_size=64 * 1024))

    assert received == DATA[: 3 * MIB]
    assert proxy.cuts == 1


@pytest.mark.moto
def test_a_download_waits_out_a_store_outage_of_a_few_seconds(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    """Found by the fault suite: a cut followed by an outage of a few seconds outlasted the
    retries of the resuming GET, and the download ended half-way after its 200."""
    direct.put_object(Bucket=bucket, Key=KEY, Body=DATA[: 3 * MIB])
    store = store_via(proxy, bucket, attempts=3, resume_seconds=DEFAULT_RESUME_SECONDS)
    proxy.cut_after(MIB, direction="downstream", then_down=True)
    back = threading.Timer(4.0, proxy.up)
    back.start()
    try:
        received = b"".join(store.open(KEY, chunk_size=64 * 1024))
    finally:
        back.cancel()

    assert received == DATA[: 3 * MIB]


@pytest.mark.moto
def test_a_download_whose_store_stays_away_is_storage_unavailable(
    proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    direct.put_object(Bucket=bucket, Key=KEY, Body=DATA[: 3 * MIB])
    store = store_via(proxy, bucket, attempts=3, resume_seconds=1.0)
    proxy.cut_after(MIB, direction="downstream", then_down=True)

    received: list[bytes] = []
    with pytest.raises(StorageUnavailable, match="GetObject"):
        received.extend(store.open(KEY, chunk_size=64 * 1024))

    assert 0 < len(b"".join(received)) < 3 * MIB


# -- down, slow --------------------------------------------------------------------------------


@pytest.mark.moto
@pytest.mark.parametrize("refuse", [True, False], ids=["refused", "reset"])
def test_a_store_that_is_down_fails_every_call_at_once(
    refuse: bool, proxy: FaultProxy, bucket: str, direct: S3Client
) -> None:
    direct.put_object(Bucket=bucket, Key="present", Body=b"x")
    store = store_via(proxy, bucket)
    store.check()
    proxy.down(refuse=refuse)

    with pytest.raises(StorageUnavailable, match="PutObject"):
        store.put("small", [b"tiny"])
    with pytest.raises(StorageUnavailable, match="CreateMultipartUpload"):
        store.put(KEY, chunked(DATA))
    with pytest.raises(StorageUnavailable, match="GetObject"):
        store.open("present")
    with pytest.raises(StorageUnavailable, match="HeadObject"):
        store.exists("present")
    with pytest.raises(StorageUnavailable, match="HeadBucket"):
        store.check()
    with pytest.raises(StorageUnavailable, match="ListObjectVersions"):
        store.delete("present")
    with pytest.raises(StorageUnavailable, match="ListObjectsV2"):
        list(store.keys())

    proxy.up()
    store.check()
    assert store.exists("present")
    assert stored_versions(direct, bucket, "small") == 0
    assert stored_versions(direct, bucket, KEY) == 0
    assert open_uploads(direct, bucket) == []


@pytest.mark.moto
def test_a_store_slower_than_the_read_timeout_is_storage_unavailable(
    proxy: FaultProxy, bucket: str
) -> None:
    store = store_via(proxy, bucket, read_timeout=0.3)
    proxy.delay(1.0)

    with pytest.raises(StorageUnavailable, match="ReadTimeoutError"):
        store.check()

    proxy.delay(0)
    store.check()


# -- FaultProxy itself, against a plain TCP server ---------------------------------------------


@dataclass
class Received:
    size: int = 0
    ending: str = "open"  # "eof" or "reset"


@dataclass
class RecordingServer:
    """Counts what each connection delivers and how it ended; echoes it back if asked."""

    echo: bool = False
    received: list[Received] = field(default_factory=list)
    done: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            record = Received()
            self.received.append(record)
            threading.Thread(target=self._serve, args=(conn, record), daemon=True).start()

    def _serve(self, conn: socket.socket, record: Received) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    record.size += len(data)
                    if self.echo:
                        conn.sendall(data)
                record.ending = "eof"
            except ConnectionResetError:
                record.ending = "reset"
        self.done.release()

    def wait_for(self, connections: int) -> list[Received]:
        for _ in range(connections):
            assert self.done.acquire(timeout=10), "a connection never ended"
        return self.received

    def wait_until(self, condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not condition():
            assert time.monotonic() < deadline, "the server never saw it"
            time.sleep(0.01)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    running = RecordingServer()
    yield running
    running.close()


@pytest.fixture
def tcp_proxy(server: RecordingServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", server.port) as running:
        yield running


def send(port: int, size: int) -> None:
    """Send ``size`` bytes and close; a reset from the proxy on the way is expected."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        try:
            conn.sendall(b"x" * size)
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)  # wait for the far end to close
        except OSError:
            pass


def test_cut_after_delivers_exactly_n_bytes_then_resets_and_later_connections_pass(
    server: RecordingServer, tcp_proxy: FaultProxy
) -> None:
    tcp_proxy.cut_after(12_345)

    send(tcp_proxy.port, 100_000)
    send(tcp_proxy.port, 50_000)

    first, second = server.wait_for(2)
    assert (first.size, first.ending) == (12_345, "reset")
    assert (second.size, second.ending) == (50_000, "eof")
    assert tcp_proxy.cuts == 1


def test_cut_after_counts_across_connections_unless_told_otherwise(
    server: RecordingServer, tcp_proxy: FaultProxy
) -> None:
    tcp_proxy.cut_after(1000, per_connection=True)
    send(tcp_proxy.port, 600)
    send(tcp_proxy.port, 600)
    tcp_proxy.cut_after(1000)  # re-arming replaces the per-connection cut
    send(tcp_proxy.port, 600)
    send(tcp_proxy.port, 600)

    sizes = [(r.size, r.ending) for r in server.wait_for(4)]
    assert sizes == [(600, "eof"), (600, "eof"), (600, "eof"), (400, "reset")]


def test_down_refuses_or_resets_and_up_restores(
    server: RecordingServer, tcp_proxy: FaultProxy
) -> None:
    live = socket.create_connection(("127.0.0.1", tcp_proxy.port), timeout=5)
    live.sendall(b"hello")
    server.wait_until(lambda: len(server.received) == 1 and server.received[0].size == 5)

    tcp_proxy.down()

    with pytest.raises(ConnectionResetError):
        live.recv(1)  # the open connection was reset
    live.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", tcp_proxy.port), timeout=5)
    tcp_proxy.up()
    tcp_proxy.down(refuse=False)
    with (
        socket.create_connection(("127.0.0.1", tcp_proxy.port), timeout=5) as accepted,
        pytest.raises(ConnectionResetError),
    ):
        accepted.recv(1)
    tcp_proxy.up()
    send(tcp_proxy.port, 10)
    assert [(r.size, r.ending) for r in server.wait_for(2)][-1] == (10, "eof")


def test_delay_holds_every_forwarded_read() -> None:
    echo = RecordingServer(echo=True)
    with (
        FaultProxy("127.0.0.1", echo.port) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn,
    ):
        proxy.delay(0.5)
        conn.sendall(b"ping")
        conn.settimeout(0.2)
        with pytest.raises(TimeoutError):
            conn.recv(4)
        conn.settimeout(5)
        assert conn.recv(4) == b"ping"
    echo.close()
