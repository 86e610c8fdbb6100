"""The BlobStore contract, run against every store: the local folder, and S3 on a moto server.

Each test gets a fresh store (a tmp_path folder; a new versioned bucket) and a way to see what
the store left behind where a caller would not look: temp files, open multipart uploads, old
object versions.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING

import pytest

from tests.integration.stores import MIB, PART, REGION, Backend
from vault.errors import NotFound, StorageUnavailable
from vault.storage.s3 import S3BlobStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ODD_CHUNK_SIZES = [1, 7, 4099, 65537, 1_000_003, 3 * MIB + 5]


@cache
def random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def odd_chunks(data: bytes) -> Iterator[bytes]:
    """``data`` cut into chunks of awkward, varying sizes."""
    offset, turn = 0, 0
    while offset < len(data):
        size = ODD_CHUNK_SIZES[turn % len(ODD_CHUNK_SIZES)]
        piece = data[offset : offset + size]
        yield piece
        offset += size
        turn += 1


class Boom(Exception):
    """The caller's chunk iterator failing (the encryptor, the upload stream)."""


def failing_after(data: bytes, n_bytes: int, error: BaseException) -> Iterator[bytes]:
    """Yield the first ``n_bytes`` of ``data`` in 1 MiB chunks, then raise ``error``."""
    for offset in range(0, n_bytes, MIB):
        yield data[offset : min(offset + MIB, n_bytes)]
    raise error


def assert_nothing_stored(backend: Backend, key: str) -> None:
    assert list(backend.store.keys()) == []
    assert backend.versions(key) == 0
    assert backend.leftovers() == []
    assert not backend.store.exists(key)


# -- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [0, 1, PART - 1, PART, PART + 1, 3 * PART + 7],
    ids=["0B", "1B", "part-1", "part", "part+1", "3parts+7"],
)
def test_put_then_open_returns_the_same_bytes(backend: Backend, size: int) -> None:
    data = random_bytes(size)

    written = backend.store.put("cases/c1/doc", odd_chunks(data))

    assert written == size
    chunks = list(backend.store.open("cases/c1/doc", chunk_size=MIB))
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= MIB for chunk in chunks)
    assert backend.store.exists("cases/c1/doc")
    assert list(backend.store.keys()) == ["cases/c1/doc"]
    assert backend.leftovers() == []


def test_put_accepts_a_single_chunk_larger_than_several_parts(backend: Backend) -> None:
    data = random_bytes(2 * PART + 3)

    assert backend.store.put("big", [data]) == len(data)

    assert b"".join(backend.store.open("big")) == data


def test_put_overwrites_an_existing_object(backend: Backend) -> None:
    backend.store.put("doc", [b"first version"])

    backend.store.put("doc", [b"second"])

    assert b"".join(backend.store.open("doc")) == b"second"
    assert list(backend.store.keys()) == ["doc"]


def test_open_streams_lazily_and_can_resume_after_a_break(backend: Backend) -> None:
    data = random_bytes(3 * MIB)
    backend.store.put("doc", [data])

    chunks = backend.store.open("doc", chunk_size=MIB)
    head = b""
    for chunk in chunks:  # what the documents service does to read the header first
        head += chunk
        break
    rest = b"".join(chunks)

    assert head + rest == data


# -- all or nothing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fail_after",
    [0, PART // 2, PART, 2 * PART + 3],
    ids=["before-any-byte", "within-first-part", "after-one-full-part", "after-two-parts"],
)
def test_a_chunk_iterator_that_raises_leaves_nothing(backend: Backend, fail_after: int) -> None:
    data = random_bytes(3 * PART)
    error = Boom("encryption failed")

    with pytest.raises(Boom) as raised:
        backend.store.put("cases/c1/doc", failing_after(data, fail_after, error))

    assert raised.value is error  # propagated unchanged, not translated
    assert_nothing_stored(backend, "cases/c1/doc")


@pytest.mark.parametrize("error", [KeyboardInterrupt(), GeneratorExit()], ids=type)
def test_an_interrupt_inside_the_chunk_iterator_leaves_nothing(
    backend: Backend, error: BaseException
) -> None:
    data = random_bytes(3 * PART)

    with pytest.raises(type(error)):
        backend.store.put("doc", failing_after(data, 2 * PART + 1, error))

    assert_nothing_stored(backend, "doc")


def test_a_failed_overwrite_keeps_the_previous_object(backend: Backend) -> None:
    backend.store.put("doc", [b"the version that stays"])

    with pytest.raises(Boom):
        backend.store.put("doc", failing_after(random_bytes(2 * PART), 2 * PART, Boom()))

    assert b"".join(backend.store.open("doc")) == b"the version that stays"
    assert backend.versions("doc") == 1
    assert backend.leftovers() == []


# -- open, exists, delete, keys, check ---------------------------------------------------------


def test_open_wants_a_positive_chunk_size(backend: Backend) -> None:
    backend.store.put("doc", [b"x"])

    with pytest.raises(ValueError, match="chunk_size"):
        backend.store.open("doc", chunk_size=0)


def test_open_of_a_missing_key_raises_not_found(backend: Backend) -> None:
    backend.store.put("cases/c1/other", [b"x"])

    with pytest.raises(NotFound):
        backend.store.open("cases/c1/doc")
    assert not backend.store.exists("cases/c1/doc")


def test_delete_removes_every_version_and_is_idempotent(backend: Backend) -> None:
    backend.store.put("cases/c1/doc", [b"first"])
    backend.store.put("cases/c1/doc", [b"second"])
    backend.store.put("cases/c1/doc-2", [b"a neighbour sharing the prefix"])

    backend.store.delete("cases/c1/doc")

    assert backend.versions("cases/c1/doc") == 0
    with pytest.raises(NotFound):
        backend.store.open("cases/c1/doc")
    assert list(backend.store.keys()) == ["cases/c1/doc-2"]
    backend.store.delete("cases/c1/doc")  # again: no error
    backend.store.delete("never/stored")
    assert b"".join(backend.store.open("cases/c1/doc-2")) == b"a neighbour sharing the prefix"


def test_keys_lists_by_prefix_in_order(backend: Backend) -> None:
    for key in ["b/4", "a/2", "ab/3", "a/1", "a/sub/5"]:
        backend.store.put(key, [key.encode()])

    assert list(backend.store.keys()) == ["a/1", "a/2", "a/sub/5", "ab/3", "b/4"]
    assert list(backend.store.keys("a/")) == ["a/1", "a/2", "a/sub/5"]
    assert list(backend.store.keys("a")) == ["a/1", "a/2", "a/sub/5", "ab/3"]
    assert list(backend.store.keys("a/s")) == ["a/sub/5"]
    assert list(backend.store.keys("c")) == []


def test_check_passes_on_a_working_store(backend: Backend) -> None:
    backend.store.check()

    assert backend.leftovers() == []


# -- keys the stores refuse --------------------------------------------------------------------

BAD_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "cases/../../outside",
    "cases//doc",
    "cases/doc/",
    "cases/./doc",
    "..",
    "cases\\doc",
    "cases/doc name",
    "cases/döc",
    "cases/doc\n",
    "a" * 1025,
    "a/" + "b" * 256,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_bad_key_is_refused_and_nothing_is_written(backend: Backend, key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        backend.store.put(key, [b"data"])
    for call in (backend.store.open, backend.store.delete, backend.store.exists):
        with pytest.raises(ValueError, match="key"):
            call(key)

    assert list(backend.store.keys()) == []
    assert backend.leftovers() == []


@pytest.mark.parametrize("prefix", ["/", "../", "a//", "a/../", "a\\b", "ü"])
def test_a_bad_prefix_is_refused(backend: Backend, prefix: str) -> None:
    with pytest.raises(ValueError, match=r"prefix|key"):
        list(backend.store.keys(prefix))


# -- S3 only: versioning off, buckets ----------------------------------------------------------


@pytest.mark.moto
def test_delete_works_on_an_unversioned_bucket(moto_url: str, s3_client: S3Client) -> None:
    bucket = f"plain-{uuid.uuid4().hex[:12]}"
    store = S3BlobStore(
        bucket=bucket, endpoint_url=moto_url, region=REGION, part_size=PART, client=s3_client
    )
    store.ensure_bucket(versioning=False)
    store.put("doc", [b"one"])
    store.put("doc", [b"two"])

    store.delete("doc")

    assert "Versions" not in s3_client.list_object_versions(Bucket=bucket, Prefix="doc")
    assert not store.exists("doc")
    assert s3_client.get_bucket_versioning(Bucket=bucket).get("Status") is None


@pytest.mark.moto
def test_ensure_bucket_is_idempotent_and_switches_versioning_on(
    moto_url: str, s3_client: S3Client
) -> None:
    bucket = f"ensure-{uuid.uuid4().hex[:12]}"
    store = S3BlobStore(bucket=bucket, endpoint_url=moto_url, region=REGION)

    store.ensure_bucket(versioning=False)
    store.ensure_bucket(versioning=True)
    store.ensure_bucket(versioning=True)

    assert s3_client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    location = s3_client.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert location == REGION


@pytest.mark.moto
def test_a_missing_bucket_is_storage_unavailable(moto_url: str) -> None:
    store = S3BlobStore(
        bucket=f"missing-{uuid.uuid4().hex[:12]}", endpoint_url=moto_url, region=REGION
    )

    with pytest.raises(StorageUnavailable, match="HeadBucket"):
        store.check()
    with pytest.raises(StorageUnavailable, match=r"PutObject \(NoSuchBucket\)"):
        store.put("doc", [b"data"])
