"""build_runtime turns settings into parts; readiness says which of them answer."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.settings import Settings
from infra.wiring import Runtime, build_runtime, readiness
from keys.kms import AwsKmsProvider
from keys.local import LocalKeyringProvider
from keys.store import KeyStore
from tests.conftest import free_port
from vault.intake import IntakeLimits
from vault.storage.local import LocalFolderBlobStore
from vault.storage.s3 import S3BlobStore

ALL_READY = {"database": True, "blob_store": True, "key_provider": True}


@pytest.fixture
def runtime_for(tmp_path: Path) -> Iterator[Any]:
    """Builds runtimes from settings under tmp_path (given overrides) and closes them after."""
    built: list[Runtime] = []

    def build(**overrides: Any) -> Runtime:
        settings = Settings(data_dir=tmp_path / "data", _env_file=None, **overrides)  # type: ignore[call-arg]
        runtime = build_runtime(settings)
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        runtime.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_embedded_defaults_build_local_parts_that_are_ready(runtime_for: Any) -> None:
    runtime = runtime_for(max_document_mib=3, max_image_megapixels=7, pdf_memory_mib=256)
    assert isinstance(runtime.blob_store, LocalFolderBlobStore)
    assert isinstance(runtime.root_keys, LocalKeyringProvider)
    assert isinstance(runtime.key_store, KeyStore)
    assert runtime.key_store.provider is runtime.root_keys
    assert runtime.intake_limits == IntakeLimits(
        max_bytes=3 * 1024 * 1024,
        max_image_pixels=7_000_000,
        pdf_memory_bytes=256 * 1024 * 1024,
        pdf_cpu_seconds=60,
        pdf_wall_seconds=120,
    )
    assert runtime.frame_size == 1024 * 1024
    assert runtime.engine.url.get_backend_name() == "sqlite"
    assert readiness(runtime) == ALL_READY


def test_spool_and_objects_folders_are_private_even_if_they_existed(
    runtime_for: Any, tmp_path: Path
) -> None:
    spool = tmp_path / "data" / "spool"
    spool.mkdir(parents=True, mode=0o755)
    os.chmod(spool, 0o755)
    runtime = runtime_for()
    assert runtime.spool_dir == spool
    assert mode(spool) == 0o700
    assert mode(tmp_path / "data" / "objects") == 0o700


def test_sessions_come_from_the_runtime_engine(runtime_for: Any) -> None:
    runtime = runtime_for()
    with runtime.sessions() as session:
        assert session.bind is runtime.engine


def test_an_unreachable_database_is_not_ready(runtime_for: Any) -> None:
    runtime = runtime_for(database_url=f"postgresql://medvault@127.0.0.1:{free_port()}/medvault")
    assert readiness(runtime) == {**ALL_READY, "database": False}


def test_a_broken_object_folder_is_not_ready(runtime_for: Any, tmp_path: Path) -> None:
    runtime = runtime_for()
    objects = tmp_path / "data" / "objects"
    objects.rmdir()
    objects.write_bytes(b"not a folder")
    assert readiness(runtime) == {**ALL_READY, "blob_store": False}


def test_an_insecure_keyring_folder_is_not_ready(runtime_for: Any, tmp_path: Path) -> None:
    runtime = runtime_for()
    keys_dir = tmp_path / "data" / "keys"
    keys_dir.mkdir(parents=True)
    os.chmod(keys_dir, 0o777)
    assert readiness(runtime) == {**ALL_READY, "key_provider": False}


@pytest.mark.moto
def test_s3_and_kms_settings_build_the_aws_parts(runtime_for: Any, moto_url: str) -> None:
    bucket = f"medvault-{uuid.uuid4().hex[:12]}"
    runtime = runtime_for(
        blob_store="s3",
        s3_bucket=bucket,
        s3_endpoint_url=moto_url,
        s3_part_size_mib=5,
        key_provider="kms",
        kms_endpoint_url=moto_url,
    )
    assert isinstance(runtime.blob_store, S3BlobStore)
    assert isinstance(runtime.root_keys, AwsKmsProvider)
    assert runtime.blob_store.bucket == bucket
    # The bucket is provisioned outside medvault; until it exists the store is not ready.
    assert readiness(runtime) == {**ALL_READY, "blob_store": False}
    boto3.client("s3", endpoint_url=moto_url, region_name="eu-central-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    assert readiness(runtime) == ALL_READY
