"""The stores the integration tests run against, each with a way to see what it left behind
where a caller would not look (temp files, open multipart uploads, old object versions); the
``s3_client`` and ``backend`` fixtures that hand them out are in conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vault.storage.interfaces import BlobStore
from vault.storage.local import LocalFolderBlobStore
from vault.storage.s3 import S3BlobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
PART = 5 * MIB
REGION = "eu-central-1"


@dataclass
class Backend:
    store: BlobStore
    leftovers: Callable[[], list[str]]  # temp files or open multipart uploads
    versions: Callable[[str], int]  # stored versions (and delete markers) of one key


def local_backend(root: Path) -> Backend:
    def leftovers() -> list[str]:
        tmp = root / "tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []

    def versions(key: str) -> int:
        return int((root / "objects" / key).is_file())

    return Backend(LocalFolderBlobStore(root), leftovers, versions)


def s3_backend(moto_url: str, direct: S3Client) -> Backend:
    bucket = f"contract-{uuid.uuid4().hex[:12]}"
    store = S3BlobStore(
        bucket=bucket, endpoint_url=moto_url, region=REGION, part_size=PART, client=direct
    )
    store.ensure_bucket(versioning=True)

    def leftovers() -> list[str]:
        uploads = direct.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return sorted(upload["Key"] for upload in uploads)

    def versions(key: str) -> int:
        listed = direct.list_object_versions(Bucket=bucket, Prefix=key)
        entries = [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]
        return sum(entry["Key"] == key for entry in entries)

    return Backend(store, leftovers, versions)
