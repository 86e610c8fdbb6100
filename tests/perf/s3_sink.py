"""S3Sink: just enough of S3 over HTTP to measure S3BlobStore itself, not the store behind it.

A moto server tops out at 100-170 MB/s and would measure itself. The sink reads and discards
every uploaded body (it counts the bytes), answers with a made-up ETag and echoes the checksum
headers the client sent, so botocore is satisfied. GetObject serves the file
``serve_dir/<key>`` (a symlink is fine) if it exists, else NoSuchKey: a benchmark places a real
ciphertext there to measure downloads.

Speaks: HeadBucket, HeadObject, PutObject, CreateMultipartUpload, UploadPart,
CompleteMultipartUpload, AbortMultipartUpload, GetObject (whole objects, no Range), with
path-style addressing (``/<bucket>/<key>``), HTTP/1.1 keep-alive, one thread per connection.

Run ``python -m tests.perf.s3_sink [MiB]`` to measure S3BlobStore put and get against it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

_S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_READ_SIZE = 1024 * 1024


class S3Sink:
    """The sink as a context manager: ``with S3Sink(folder) as sink: ... sink.url ...``."""

    def __init__(self, serve_dir: Path, *, host: str = "127.0.0.1") -> None:
        self.serve_dir = Path(serve_dir)
        self.host = host
        self.bytes_received = 0  # object bytes, every PutObject and UploadPart body
        self.operations: Counter[str] = Counter()  # "PutObject" -> how many, ...
        # key -> (size, CRC32 header or "") of each part of its last completed upload or put
        self.objects: dict[str, list[tuple[int, str]]] = {}
        self._uploads: dict[str, tuple[str, dict[int, tuple[int, str]]]] = {}  # id -> key, parts
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sink is not running")
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def open_uploads(self) -> int:
        with self._lock:
            return len(self._uploads)

    def __enter__(self) -> S3Sink:
        server = _QuietServer((self.host, 0), _SinkHandler)
        server.sink = self  # type: ignore[attr-defined]  # read by the handler
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="s3-sink", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    # -- what the handler records ----------------------------------------------------------

    def _record(self, operation: str) -> None:
        with self._lock:
            self.operations[operation] += 1

    def _received(self, size: int) -> None:
        with self._lock:
            self.bytes_received += size

    def _put(self, key: str, size: int, checksum: str) -> None:
        with self._lock:
            self.objects[key] = [(size, checksum)]

    def _create(self, key: str) -> str:
        upload_id = uuid.uuid4().hex
        with self._lock:
            self._uploads[upload_id] = (key, {})
        return upload_id

    def _part(self, upload_id: str, number: int, size: int, checksum: str) -> bool:
        with self._lock:
            if upload_id not in self._uploads:
                return False
            self._uploads[upload_id][1][number] = (size, checksum)
            return True

    def _complete(self, upload_id: str) -> bool:
        with self._lock:
            if upload_id not in self._uploads:
                return False
            key, parts = self._uploads.pop(upload_id)
            self.objects[key] = [parts[n] for n in sorted(parts)]
            return True

    def _abort(self, upload_id: str) -> bool:
        with self._lock:
            return self._uploads.pop(upload_id, None) is not None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-request is routine here (fault tests, aborted uploads)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as S3 does
    server_version = "S3Sink"

    @property
    def sink(self) -> S3Sink:
        return self.server.sink  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass  # a benchmark does not want a line per part

    # -- routing -----------------------------------------------------------------------------

    def _target(self) -> tuple[str, str, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        bucket, _, key = parts.path.lstrip("/").partition("/")
        return unquote(bucket), unquote(key), parse_qs(parts.query, keep_blank_values=True)

    def do_HEAD(self) -> None:
        _bucket, key, _query = self._target()
        self.sink._record("HeadObject" if key else "HeadBucket")
        if not key:
            self._reply(200, headers={"x-amz-bucket-region": "eu-central-1"})
            return
        path = self._served(key)
        if path is None:
            self._reply(404, head_only=True)
            return
        self._reply(200, headers={"Content-Length": str(path.stat().st_size)}, head_only=True)

    def do_PUT(self) -> None:
        _bucket, key, query = self._target()
        size = self._discard_body()
        checksums = {
            k: v for k, v in self.headers.items() if k.lower().startswith("x-amz-checksum-")
        }
        headers = {"ETag": f'"{uuid.uuid4().hex}"', **checksums}
        crc32 = self.headers.get("x-amz-checksum-crc32", "")
        if "uploadId" in query:
            self.sink._record("UploadPart")
            number = int(query["partNumber"][0])
            if not self.sink._part(query["uploadId"][0], number, size, crc32):
                self._error(404, "NoSuchUpload", "The specified upload does not exist.")
                return
        else:
            self.sink._record("PutObject")
            self.sink._put(key, size, crc32)
        self._reply(200, headers=headers)

    def do_POST(self) -> None:
        bucket, key, query = self._target()
        self._discard_body()
        if "uploads" in query:
            self.sink._record("CreateMultipartUpload")
            upload_id = self.sink._create(key)
            self._xml(
                "InitiateMultipartUploadResult",
                f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                f"<UploadId>{upload_id}</UploadId>",
            )
        elif "uploadId" in query:
            self.sink._record("CompleteMultipartUpload")
            if not self.sink._complete(query["uploadId"][0]):
                self._error(404, "NoSuchUpload", "The specified upload does not exist.")
                return
            self._xml(
                "CompleteMultipartUploadResult",
                f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
                f'<ETag>"{uuid.uuid4().hex}-1"</ETag>',
            )
        else:
            self._error(501, "NotImplemented", "The sink does not speak this operation.")

    def do_DELETE(self) -> None:
        _bucket, _key, query = self._target()
        self._discard_body()
        if "uploadId" not in query:
            self._error(501, "NotImplemented", "The sink does not speak this operation.")
            return
        self.sink._record("AbortMultipartUpload")
        if self.sink._abort(query["uploadId"][0]):
            self._reply(204)
        else:
            self._error(404, "NoSuchUpload", "The specified upload does not exist.")

    def do_GET(self) -> None:
        _bucket, key, _query = self._target()
        self.sink._record("GetObject")
        path = self._served(key) if key else None
        if path is None:
            self._error(404, "NoSuchKey", "The specified key does not exist.")
            return
        with path.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("ETag", f'"{uuid.uuid4().hex}"')
            self.send_header("Last-Modified", formatdate(usegmt=True))
            self.end_headers()
            if size:
                self.connection.sendfile(source)

    # -- helpers -----------------------------------------------------------------------------

    def _served(self, key: str) -> Path | None:
        """The file for ``key`` under serve_dir; None if missing or the key tries to climb out."""
        segments = key.split("/")
        if any(s in {"", ".", ".."} or "\\" in s for s in segments):
            return None
        path = self.sink.serve_dir.joinpath(*segments)
        return path if path.is_file() else None

    def _discard_body(self) -> int:
        """Read the request body into a scratch buffer and drop it; return the object's size."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise NotImplementedError("the sink expects a Content-Length")  # botocore sends one
        remaining = int(self.headers.get("Content-Length", "0"))
        scratch = memoryview(bytearray(min(remaining, _READ_SIZE)))
        while remaining:
            got = self.rfile.readinto(scratch[: min(remaining, len(scratch))])
            if not got:
                raise ConnectionError("the client went away mid-body")
            remaining -= got
        # aws-chunked bodies (trailing checksums, over TLS) frame the object: count the object.
        declared = self.headers.get("x-amz-decoded-content-length")
        size = int(declared) if declared else int(self.headers.get("Content-Length", "0"))
        if self.command == "PUT":
            self.sink._received(size)
        return size

    def _reply(
        self,
        status: int,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        head_only: bool = False,
    ) -> None:
        headers = headers or {}
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head_only:
            self.wfile.write(body)

    def _xml(self, root: str, inner: str, status: int = 200) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?><{root} xmlns="{_S3_NS}">{inner}</{root}>'
        self._reply(status, headers={"Content-Type": "application/xml"}, body=body.encode())

    def _error(self, status: int, code: str, message: str) -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>{uuid.uuid4().hex}</RequestId></Error>"
        )
        self._reply(status, headers={"Content-Type": "application/xml"}, body=body.encode())


def random_looking_chunks(size: int, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """``size`` bytes that look random (a 16 MiB random block, repeated), chunk by chunk."""
    block = os.urandom(16 * 1024 * 1024)
    sent = 0
    while sent < size:
        offset = sent % len(block)
        take = min(chunk_size, size - sent, len(block) - offset)
        yield block[offset : offset + take]
        sent += take


def main(argv: list[str]) -> None:
    """Measure S3BlobStore put and get against the sink: ``python -m tests.perf.s3_sink 256``."""
    import tempfile

    from vault.storage.s3 import S3BlobStore

    size = int(argv[0] if argv else "256") * 1024 * 1024
    with tempfile.TemporaryDirectory() as folder, S3Sink(Path(folder)) as sink:
        store = S3BlobStore(bucket="bench", endpoint_url=sink.url, region="eu-central-1")
        started = time.perf_counter()
        store.put("bench/object", random_looking_chunks(size))
        put_s = time.perf_counter() - started
        with (Path(folder) / "bench-object").open("wb") as out:
            for chunk in random_looking_chunks(size):
                out.write(chunk)
        started = time.perf_counter()
        got = sum(len(chunk) for chunk in store.open("bench-object"))
        get_s = time.perf_counter() - started
    assert got == size
    mib = size / 1e6
    print(f"put {mib / put_s:.0f} MB/s, get {mib / get_s:.0f} MB/s ({size >> 20} MiB)")


if __name__ == "__main__":
    main(sys.argv[1:])
