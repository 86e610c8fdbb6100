"""One measurement per process, so each peak RSS belongs to it alone.

Run as ``python -m tests.perf.measure NAME ARGS...``; prints one JSON object on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1024 * 1024


def peak_rss_mib() -> float:
    """This process's own peak resident memory (VmHWM, MiB).

    Not ``getrusage().ru_maxrss``: Linux carries that over from the parent that forked this
    process (its memory at the fork counts), so every child of a large parent reported the
    parent's size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def mbps(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 1)


def file_chunks(source: BinaryIO) -> Iterator[bytes]:
    while chunk := source.read(CHUNK):
        yield chunk


def timed(action: Callable[[], int]) -> tuple[int, float]:
    # Dirty pages left by an earlier measurement would otherwise be written back during this one.
    os.sync()
    started = time.perf_counter()
    size = action()
    return size, time.perf_counter() - started


def raw_local(src: Path, work: Path) -> dict[str, Any]:
    """Plain copy to and from a folder, with the same fsync + rename the local store does."""
    target = work / "raw-copy"

    def put() -> int:
        # The best plain copy: one reused buffer (no allocation per chunk), unbuffered writes.
        tmp = work / "raw-copy.tmp"
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with src.open("rb", buffering=0) as source:
                while filled := source.readinto(buffer):
                    pending = view[:filled]
                    while pending:
                        pending = pending[os.write(fd, pending) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        return src.stat().st_size

    def get() -> int:
        with target.open("rb") as source:
            return sum(len(chunk) for chunk in file_chunks(source))

    put_size, put_s = timed(put)
    get_size, get_s = timed(get)
    target.unlink()
    return {"raw_put_mbps": mbps(put_size, put_s), "raw_get_mbps": mbps(get_size, get_s)}


class DocumentBench:
    """A throwaway vault (SQLite, local keyring) storing and reading one file via any store."""

    def __init__(self, work: Path, frame_size: int) -> None:
        from sqlmodel import Session, SQLModel

        import infra.models  # noqa: F401 - registers the tables
        from infra.db import make_engine
        from keys.local import LocalKeyringProvider
        from keys.store import KeyStore
        from vault.audit.service import AuditContext
        from vault.cases.service import open_case
        from vault.clock import utcnow
        from vault.intake import IntakeLimits
        from vault.patients.service import PatientIdentity, register_patient

        engine = make_engine(f"sqlite:///{work / f'bench-{uuid.uuid4().hex}.db'}")
        SQLModel.metadata.create_all(engine)
        self.session = Session(engine)
        self.keys = KeyStore(provider=LocalKeyringProvider(work / "keys" / "keyring.json"))
        self.spool = work / "spool"
        self.spool.mkdir(exist_ok=True, mode=0o700)
        self.limits = IntakeLimits(max_bytes=4 << 30, max_image_pixels=2_000_000_000)
        self.frame_size = frame_size
        # Built here, not with tests.factories, whose Pillow import would inflate the peak RSS.
        identity = PatientIdentity(name="Bench", birth_date=date(1970, 1, 1), email="b@example.org")
        patient = register_patient(
            session=self.session, keys=self.keys, identity=identity, now=utcnow()
        )
        self.case = open_case(
            session=self.session,
            keys=self.keys,
            patient_id=patient.id,
            now=utcnow(),
            audit=AuditContext.SYSTEM,
        )

    def put(self, store: Any, src: Path) -> Any:
        from vault.audit.service import AuditContext
        from vault.clock import utcnow
        from vault.documents.models import DocumentKind
        from vault.documents.service import store_document

        with src.open("rb") as source:
            return store_document(
                session=self.session,
                store=store,
                keys=self.keys,
                case_id=self.case.id,
                kind=DocumentKind.RECORD,
                filename="scan.png",
                source=source,
                limits=self.limits,
                spool_dir=self.spool,
                frame_size=self.frame_size,
                now=utcnow(),
                audit=AuditContext.SYSTEM,
            )

    def timed_put(self, store: Any, src: Path) -> tuple[Any, float]:
        stored: list[Any] = []

        def put() -> int:
            stored.append(self.put(store, src))
            return int(stored[0].size)

        _, seconds = timed(put)
        return stored[0], seconds

    def get(self, store: Any, document_id: uuid.UUID) -> int:
        from vault.audit.service import AuditContext
        from vault.clock import utcnow
        from vault.documents.service import read_document

        opened = read_document(
            session=self.session,
            store=store,
            keys=self.keys,
            document_id=document_id,
            now=utcnow(),
            audit=AuditContext.SYSTEM,
        )
        return sum(len(chunk) for chunk in opened.chunks)


def vault_local(src: Path, work: Path, frame_size: int) -> dict[str, Any]:
    from vault.storage.local import LocalFolderBlobStore

    bench = DocumentBench(work, frame_size)
    store = LocalFolderBlobStore(work / "store")
    document, put_s = bench.timed_put(store, src)
    size, get_s = timed(lambda: bench.get(store, document.id))
    assert size == document.size == src.stat().st_size, "the round trip changed the size"
    store.delete(document.object_key)
    return {
        "put_mbps": mbps(size, put_s),
        "get_mbps": mbps(size, get_s),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def sink_credentials() -> None:
    """boto3 signs every request; the sink accepts any credentials, so never use real ones."""
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")


def vault_s3(src: Path, work: Path, frame_size: int) -> dict[str, Any]:
    """Against a sink that discards uploads; the download streams a ciphertext made locally."""
    sink_credentials()
    from tests.perf.s3_sink import S3Sink
    from vault.storage.local import LocalFolderBlobStore
    from vault.storage.s3 import S3BlobStore

    bench = DocumentBench(work, frame_size)
    serve = work / "sink"
    serve.mkdir(exist_ok=True)
    with S3Sink(serve) as sink:
        s3 = S3BlobStore(bucket="bench", endpoint_url=sink.url, region="eu-central-1")
        _, put_s = bench.timed_put(s3, src)

        local_root = work / "store-for-sink"
        document = bench.put(LocalFolderBlobStore(local_root), src)
        target = serve / document.object_key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local_root / "objects" / document.object_key, target)
        size, get_s = timed(lambda: bench.get(s3, document.id))
    assert size == src.stat().st_size
    target.unlink()
    return {"put_mbps": mbps(size, put_s), "get_mbps": mbps(size, get_s)}


def raw_s3(src: Path, work: Path) -> dict[str, Any]:
    from tests.perf.s3_sink import S3Sink
    from vault.storage.s3 import S3BlobStore

    sink_credentials()
    serve = work / "sink-raw"
    serve.mkdir(exist_ok=True)
    (serve / "raw").symlink_to(src)
    with S3Sink(serve) as sink:
        store = S3BlobStore(bucket="bench", endpoint_url=sink.url, region="eu-central-1")

        def put() -> int:
            with src.open("rb") as source:
                store.put("raw-upload", file_chunks(source))
            return src.stat().st_size

        def get() -> int:
            return sum(len(chunk) for chunk in store.open("raw"))

        put_size, put_s = timed(put)
        get_size, get_s = timed(get)
    return {"raw_s3_put_mbps": mbps(put_size, put_s), "raw_s3_get_mbps": mbps(get_size, get_s)}


def esdk(src: Path, work: Path, profile: str) -> dict[str, Any]:
    """The AWS Encryption SDK, the peer a Python developer would reach for, to the same folder.

    A raw AES-256 wrapping key stands in for the keyring (no KMS round trip on either side).
    """
    import aws_encryption_sdk
    from aws_encryption_sdk.identifiers import (
        AlgorithmSuite,
        CommitmentPolicy,
        EncryptionKeyType,
        WrappingAlgorithm,
    )
    from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey
    from aws_encryption_sdk.key_providers.raw import RawMasterKeyProvider

    wrapping_key = os.urandom(32)

    class BenchKeyProvider(RawMasterKeyProvider):  # type: ignore[misc]
        provider_id = "bench"

        def _get_raw_key(self, key_id: bytes) -> WrappingKey:
            return WrappingKey(
                wrapping_algorithm=WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
                wrapping_key=wrapping_key,
                wrapping_key_type=EncryptionKeyType.SYMMETRIC,
            )

    provider = BenchKeyProvider()
    provider.add_master_key(b"root")
    client = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    options: dict[str, Any] = {}
    if profile == "committing-no-signature-1mib":
        options = {
            "algorithm": AlgorithmSuite.AES_256_GCM_HKDF_SHA512_COMMIT_KEY,
            "frame_length": 1024 * 1024,
        }
    target = work / f"esdk-{profile}"

    def put() -> int:
        tmp = target.with_suffix(".tmp")
        with src.open("rb") as source, tmp.open("wb") as out:
            with client.stream(mode="e", source=source, key_provider=provider, **options) as enc:
                for chunk in enc:
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        return src.stat().st_size

    size, seconds = timed(put)
    target.unlink()
    return {"mbps": mbps(size, seconds), "peak_rss_mib": round(peak_rss_mib(), 1)}


def pdf_sanitise(src: Path, work: Path, pages: int) -> dict[str, Any]:
    from vault.intake import IntakeLimits, sanitised

    spool = work / "spool"
    spool.mkdir(exist_ok=True, mode=0o700)
    started = time.perf_counter()
    with (
        src.open("rb") as source,
        sanitised(source, limits=IntakeLimits(), spool_dir=spool) as document,
    ):
        size = sum(len(chunk) for chunk in document.chunks())
    seconds = time.perf_counter() - started
    assert size > 0
    return {"pages_per_s": round(pages / seconds, 1)}


def main(argv: list[str]) -> None:
    name, src, work, *rest = argv
    source, workdir = Path(src), Path(work)
    workdir.mkdir(parents=True, exist_ok=True)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "raw_local": lambda: raw_local(source, workdir),
        "vault_local": lambda: vault_local(source, workdir, int(rest[0])),
        "vault_s3": lambda: vault_s3(source, workdir, int(rest[0])),
        "raw_s3": lambda: raw_s3(source, workdir),
        "esdk": lambda: esdk(source, workdir, rest[0]),
        "pdf_sanitise": lambda: pdf_sanitise(source, workdir, int(rest[0])),
    }
    result = runners[name]()
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
