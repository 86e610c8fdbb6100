"""LocalFolderBlobStore beyond the shared contract: disk failures, permissions, folders, cleanup.

The shared contract (round trips, all or nothing, delete, keys): integration/test_blob_stores.py.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from vault.clock import utcnow
from vault.errors import NotFound, StorageUnavailable
from vault.storage.local import LocalFolderBlobStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> LocalFolderBlobStore:
    return LocalFolderBlobStore(root)


def everything_under(root: Path) -> list[str]:
    """Every file (not folder) under the store's root, relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def chunks_of(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def fail_with(error: OSError) -> Callable[..., None]:
    def failing(*args: object, **kwargs: object) -> None:
        raise error

    return failing


# -- disk failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("replace", OSError(errno.EIO, "I/O error", "/secret/path/cases/c1/doc")),
        ("fsync", OSError(errno.EIO, "I/O error")),
        ("write", OSError(errno.ENOSPC, "No space left on device")),
    ],
)
def test_a_disk_failure_during_put_leaves_no_temp_file_and_no_object(
    store: LocalFolderBlobStore,
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    error: OSError,
) -> None:
    monkeypatch.setattr(os, target, fail_with(error))

    with pytest.raises(StorageUnavailable) as raised:
        store.put("cases/c1/doc", chunks_of(b"ciphertext" * 500))

    monkeypatch.undo()
    assert everything_under(root) == []
    assert not store.exists("cases/c1/doc")
    assert errno.errorcode[error.errno or 0] in str(raised.value)
    assert "secret" not in str(raised.value)
    assert "cases" not in str(raised.value)


def test_put_fsyncs_the_file_before_the_rename_and_the_folder_after_it(
    store: LocalFolderBlobStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        target = Path(os.readlink(f"/proc/self/fd/{fd}"))
        events.append(f"fsync {target.relative_to(root).as_posix()}")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)

    store.put("cases/c1/doc", [b"ciphertext"])

    rename = events.index("replace")
    assert any(e.startswith("fsync tmp/") and e.endswith(".part") for e in events[:rename])
    assert events[rename + 1 :] == ["fsync objects/cases/c1"]
    # the folders created on the way were made durable in their parents too
    assert {"fsync objects", "fsync objects/cases"} <= set(events[:rename])


def test_a_failing_put_over_an_existing_object_keeps_it(
    store: LocalFolderBlobStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("doc", [b"old"])
    monkeypatch.setattr(os, "replace", fail_with(OSError(errno.EIO, "I/O error")))

    with pytest.raises(StorageUnavailable):
        store.put("doc", [b"new"])

    monkeypatch.undo()
    assert b"".join(store.open("doc")) == b"old"
    assert everything_under(root) == ["objects/doc"]


def test_a_read_error_is_storage_unavailable(
    store: LocalFolderBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenFile:
        def __enter__(self) -> BrokenFile:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self, size: int = -1) -> bytes:
            raise OSError(errno.EIO, "I/O error")

    store.put("doc", [b"x" * 10])
    chunks = store.open("doc", chunk_size=4)
    monkeypatch.setattr(Path, "open", lambda *args, **kwargs: BrokenFile())

    with pytest.raises(StorageUnavailable, match="reading"):
        next(chunks)


def test_an_object_deleted_after_open_is_not_found_on_first_read(
    store: LocalFolderBlobStore,
) -> None:
    store.put("doc", [b"x"])
    chunks = store.open("doc")
    store.delete("doc")

    with pytest.raises(NotFound):
        next(chunks)


# -- the chunk iterator failing ----------------------------------------------------------------


@pytest.mark.parametrize("error", [KeyboardInterrupt(), GeneratorExit(), OSError(errno.EIO, "x")])
def test_an_error_from_the_chunk_iterator_propagates_unchanged_and_leaves_nothing(
    store: LocalFolderBlobStore, root: Path, error: BaseException
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"first part of the ciphertext"
        raise error

    with pytest.raises(type(error)) as raised:
        store.put("cases/c1/doc", chunks())

    assert raised.value is error  # an OSError of the caller's is not ours to translate
    assert everything_under(root) == []


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a\\b", "", "a/./b", "a/"])
def test_a_bad_key_touches_nothing_on_disk(
    store: LocalFolderBlobStore, root: Path, key: str
) -> None:
    with pytest.raises(ValueError, match="key"):
        store.put(key, [b"data"])

    assert not root.exists()
    assert not (root.parent / "escape").exists()


def test_a_key_that_is_a_folder_of_other_keys_is_refused(
    store: LocalFolderBlobStore, root: Path
) -> None:
    store.put("cases/c1/doc", [b"x"])

    with pytest.raises(ValueError, match="collides"):
        store.put("cases/c1", [b"y"])
    with pytest.raises(ValueError, match="collides"):
        store.put("cases/c1/doc/under", [b"z"])

    assert everything_under(root) == ["objects/cases/c1/doc"]
    assert not store.exists("cases/c1")
    store.delete("cases/c1")  # no such object: nothing happens
    assert store.exists("cases/c1/doc")


# -- files and folders -------------------------------------------------------------------------


def test_objects_are_private_files_in_private_folders(
    store: LocalFolderBlobStore, root: Path
) -> None:
    store.put("cases/c1/doc", [b"ciphertext"])

    path = root / "objects" / "cases" / "c1" / "doc"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o700


def test_delete_removes_emptied_folders_but_not_their_neighbours(
    store: LocalFolderBlobStore, root: Path
) -> None:
    store.put("cases/c1/doc", [b"a"])
    store.put("cases/c2/doc", [b"b"])

    store.delete("cases/c1/doc")

    assert not (root / "objects" / "cases" / "c1").exists()
    assert (root / "objects" / "cases" / "c2" / "doc").is_file()
    store.delete("cases/c2/doc")
    assert not (root / "objects" / "cases").exists()
    assert (root / "objects").is_dir()


def test_keys_of_an_empty_or_missing_store_is_empty(store: LocalFolderBlobStore) -> None:
    assert list(store.keys()) == []
    assert list(store.keys("cases/")) == []


# -- check -------------------------------------------------------------------------------------


def test_check_creates_a_missing_root(store: LocalFolderBlobStore, root: Path) -> None:
    store.check()

    assert root.is_dir()
    assert everything_under(root) == []


def test_check_fails_when_the_root_is_a_file(root: Path) -> None:
    root.write_bytes(b"not a folder")

    with pytest.raises(StorageUnavailable, match="checking"):
        LocalFolderBlobStore(root).check()


def test_check_fails_when_the_disk_refuses_writes(
    store: LocalFolderBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "open", fail_with(OSError(errno.EROFS, "Read-only file system")))

    with pytest.raises(StorageUnavailable, match="EROFS"):
        store.check()


# -- cleanup_temp ------------------------------------------------------------------------------


def test_cleanup_temp_removes_only_old_leftovers(store: LocalFolderBlobStore, root: Path) -> None:
    store.check()  # creates tmp/
    now = utcnow()
    old = root / "tmp" / "crashed.part"
    young = root / "tmp" / "running.part"
    unrelated = root / "tmp" / "notes.txt"
    for path in (old, young, unrelated):
        path.write_bytes(b"x")
    two_hours_ago = (now - timedelta(hours=2)).timestamp()
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(unrelated, (two_hours_ago, two_hours_ago))
    ten_seconds_ago = (now - timedelta(seconds=10)).timestamp()
    os.utime(young, (ten_seconds_ago, ten_seconds_ago))

    removed = store.cleanup_temp(3600, now=now)

    assert removed == 1
    assert sorted(p.name for p in (root / "tmp").iterdir()) == ["notes.txt", "running.part"]


def test_cleanup_temp_on_a_fresh_store_removes_nothing(store: LocalFolderBlobStore) -> None:
    assert store.cleanup_temp(0) == 0
