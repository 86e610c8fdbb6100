"""The document path on the production backends: PostgreSQL (and SQLite), S3 and KMS on a moto
server over real HTTP, with the connection to each cut or down."""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pikepdf
import pytest
from sqlmodel import Session, select

from keys.kms import AwsKmsProvider
from keys.store import KeyStore
from tests.factories import NOW, PATIENT_NAME, Vault, intake_limits, make_case, pdf_bytes
from tests.faultproxy import FaultProxy
from tests.perf.files import write_large_png
from vault.documents.models import Document
from vault.errors import KeyDestroyed, KmsUnavailable, StorageUnavailable
from vault.storage.s3 import S3BlobStore, make_s3_client

pytestmark = pytest.mark.moto


@pytest.fixture
def bucket(moto_url: str) -> str:
    name = f"medvault-{uuid.uuid4().hex[:10]}"
    S3BlobStore(bucket=name, endpoint_url=moto_url, region="eu-central-1").ensure_bucket(
        versioning=True
    )
    return name


@pytest.fixture
def s3_client(moto_url: str) -> object:
    return boto3.client("s3", endpoint_url=moto_url, region_name="eu-central-1")


@pytest.fixture
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    target = urlsplit(moto_url)
    with FaultProxy(target.hostname or "127.0.0.1", target.port or 80) as running:
        yield running


def make_vault(
    session: Session,
    tmp_path: Path,
    *,
    s3_url: str,
    kms_url: str,
    bucket: str,
    s3_attempts: int = 3,
) -> Vault:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700, exist_ok=True)
    client = make_s3_client(endpoint_url=s3_url, region="eu-central-1", max_attempts=s3_attempts)
    return Vault(
        session=session,
        store=S3BlobStore(
            bucket=bucket,
            endpoint_url=s3_url,
            region="eu-central-1",
            part_size=5 * 1024 * 1024,
            client=client,
        ),
        keys=KeyStore(provider=AwsKmsProvider(endpoint_url=kms_url, region="eu-central-1")),
        spool_dir=spool,
        limits=intake_limits(),
    )


def large_png(tmp_path: Path, mib: int) -> bytes:
    path = tmp_path / "large.png"
    write_large_png(path, target_bytes=mib * 1024 * 1024, width=1024)
    return path.read_bytes()


def stored_nothing(vault: Vault, s3_client: object, bucket: str) -> bool:
    objects = s3_client.list_object_versions(Bucket=bucket)  # type: ignore[attr-defined]
    uploads = s3_client.list_multipart_uploads(Bucket=bucket)  # type: ignore[attr-defined]
    return (
        not objects.get("Versions")
        and not uploads.get("Uploads")
        and vault.session.exec(select(Document)).all() == []
    )


def test_round_trip_through_s3_and_kms(
    session: Session, tmp_path: Path, moto_url: str, bucket: str
) -> None:
    vault = make_vault(session, tmp_path, s3_url=moto_url, kms_url=moto_url, bucket=bucket)
    case = make_case(session, vault.keys)
    image = large_png(tmp_path, 12)  # several multipart parts

    pdf = vault.upload(case, pdf_bytes(pages=3, with_javascript=True))
    png = vault.upload(case, image, filename="scan.png")

    got = b"".join(vault.read(png.id).chunks)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(image).hexdigest() == png.sha256
    sanitised = b"".join(vault.read(pdf.id).chunks)
    with pikepdf.open(io.BytesIO(sanitised)) as opened:
        assert "/OpenAction" not in opened.Root
    assert PATIENT_NAME.encode() not in sanitised

    vault.keys.destroy(session, case.key_id, reason="test", now=NOW)
    session.commit()
    with pytest.raises(KeyDestroyed):
        vault.read(png.id)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_connection_cut_mid_upload_leaves_nothing(
    session: Session,
    tmp_path: Path,
    moto_url: str,
    bucket: str,
    proxy: FaultProxy,
    s3_client: object,
    seed: int,
) -> None:
    # One attempt: with retries (the default) a single cut is re-sent and the upload succeeds.
    vault = make_vault(
        session,
        tmp_path,
        s3_url=f"http://127.0.0.1:{proxy.port}",
        kms_url=moto_url,
        bucket=bucket,
        s3_attempts=1,
    )
    case = make_case(session, vault.keys)
    image = large_png(tmp_path, 14)
    proxy.cut_after(random.Random(seed).randrange(1024, len(image)))

    with pytest.raises(StorageUnavailable):
        vault.upload(case, image)

    assert stored_nothing(vault, s3_client, bucket)


def test_kms_unreachable_stores_nothing(
    session: Session,
    tmp_path: Path,
    moto_url: str,
    bucket: str,
    proxy: FaultProxy,
    s3_client: object,
) -> None:
    kms_via_proxy = f"http://127.0.0.1:{proxy.port}"
    vault = make_vault(session, tmp_path, s3_url=moto_url, kms_url=kms_via_proxy, bucket=bucket)
    case = make_case(session, vault.keys)
    # A fresh key store has nothing cached: it must ask the KMS, which is now down.
    vault.keys = KeyStore(
        provider=AwsKmsProvider(endpoint_url=kms_via_proxy, region="eu-central-1")
    )
    proxy.down()

    with pytest.raises(KmsUnavailable):
        vault.upload(case, pdf_bytes())

    assert stored_nothing(vault, s3_client, bucket)
