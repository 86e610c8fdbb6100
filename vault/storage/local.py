"""LocalFolderBlobStore: the embedded default, objects as files in one folder on a local disk.

Layout under ``root``::

    objects/<key>        one file per object, the key's segments as sub-folders (0700 / 0600)
    tmp/<random>.part    an upload in progress; renamed into objects/ once complete

``tmp`` sits under the same root so that the final rename never crosses a file system and is
atomic: a reader sees the whole old object or the whole new one, never a torn write.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from vault.clock import utcnow
from vault.errors import NotFound, StorageUnavailable
from vault.storage.interfaces import ListedObject
from vault.storage.object_keys import check_key, check_prefix

_TEMP_SUFFIX = ".part"
_FILE_MODE = 0o600
_DIR_MODE = 0o700


@contextmanager
def _disk_errors(action: str) -> Iterator[None]:
    """Turn an OSError of our own I/O into StorageUnavailable, naming the errno but no path."""
    try:
        yield
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "unknown error")
        raise StorageUnavailable(f"local object store failed while {action} ({code})") from exc


class LocalFolderBlobStore:
    """A BlobStore on a local folder. Safe for several threads and processes on one host."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        target = self._objects / check_key(key)
        with _disk_errors("preparing an upload"):
            self._tmp.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        temp = self._tmp / f"{secrets.token_hex(16)}{_TEMP_SUFFIX}"
        # BaseException on purpose: a KeyboardInterrupt or a GeneratorExit raised inside the
        # caller's chunk iterator must not leave a temp file behind either.
        try:
            size = self._write_durably(temp, chunks)
            self._move_into_place(temp, target)
        except BaseException:
            with suppress(OSError):
                temp.unlink(missing_ok=True)
            raise
        return size

    def open(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        path = self._objects / check_key(key)
        if not path.is_file():
            raise NotFound("no object under this key")
        return self._read(path, chunk_size)

    def delete(self, key: str) -> None:
        path = self._objects / check_key(key)
        with _disk_errors("deleting an object"):
            try:
                path.unlink(missing_ok=True)
            except IsADirectoryError:
                return  # a folder of other keys, not an object: nothing to delete
        self._remove_empty_folders(path.parent)

    def exists(self, key: str) -> bool:
        return (self._objects / check_key(key)).is_file()

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, sorted."""
        return iter([listed.key for listed in self.listing(prefix)])

    def listing(self, prefix: str = "") -> Iterator[ListedObject]:
        """Every object under ``prefix`` with its file's modification time, sorted by key."""
        check_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        start = self._objects / folder if folder else self._objects
        found: list[ListedObject] = []
        if not start.is_dir():
            return iter(found)
        with _disk_errors("listing objects"):
            for dirpath, _dirnames, filenames in os.walk(start, onerror=_raise):
                relative = Path(dirpath).relative_to(self._objects).as_posix()
                for name in filenames:
                    key = name if relative == "." else f"{relative}/{name}"
                    if not key.startswith(prefix):
                        continue
                    try:
                        mtime = os.stat(os.path.join(dirpath, name)).st_mtime
                    except FileNotFoundError:
                        continue  # deleted while we listed
                    found.append(ListedObject(key, datetime.fromtimestamp(mtime, UTC)))
        return iter(sorted(found, key=lambda listed: listed.key))

    def check(self) -> None:
        """Prove the root is a folder we can write to: create it if missing, write a probe file."""
        with _disk_errors("checking the store"):
            self._tmp.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
            probe = self._tmp / f"check-{secrets.token_hex(8)}{_TEMP_SUFFIX}"
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
            os.close(fd)
            probe.unlink()

    def cleanup_temp(self, older_than_seconds: float, *, now: datetime | None = None) -> int:
        """Remove temp files a crashed upload left behind; return how many were removed.

        Only files older than ``older_than_seconds`` go, so an upload still running is spared.
        """
        cutoff = (now or utcnow()).timestamp() - older_than_seconds
        removed = 0
        with _disk_errors("removing leftover temp files"):
            if not self._tmp.is_dir():
                return 0
            for entry in os.scandir(self._tmp):
                if not entry.name.endswith(_TEMP_SUFFIX) or not entry.is_file():
                    continue
                with suppress(FileNotFoundError):  # another cleaner or the upload got there first
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
        return removed

    def abort_incomplete_uploads(self, *, older_than: datetime) -> int:
        """The BlobStore name of ``cleanup_temp``: temp files last written before
        ``older_than`` are removed."""
        if older_than.tzinfo is None:
            raise ValueError("older_than must be timezone-aware")
        return self.cleanup_temp(0, now=older_than)

    def _write_durably(self, temp: Path, chunks: Iterable[bytes]) -> int:
        """Write every chunk to a new private file and fsync it; return the size.

        Unbuffered on purpose: nothing is left to flush at close, so closing after a failure
        cannot raise a second error that would hide the first.
        """
        with _disk_errors("creating a temp file"):
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
        size = 0
        try:
            for chunk in chunks:  # the caller's own errors pass through untranslated
                view = memoryview(chunk).cast("B")
                size += len(view)
                with _disk_errors("writing an object"):
                    while view:
                        view = view[os.write(fd, view) :]
            with _disk_errors("writing an object"):
                os.fsync(fd)
        finally:
            with suppress(OSError):
                os.close(fd)
        return size

    def _move_into_place(self, temp: Path, target: Path) -> None:
        """Rename the finished temp file onto the key and make the rename itself durable."""
        with _disk_errors("storing an object"):
            for attempt in (1, 2):
                try:
                    self._make_folders(target.parent)
                    os.replace(temp, target)
                    break
                except (IsADirectoryError, NotADirectoryError):
                    raise ValueError("this key collides with a folder of other keys") from None
                except FileNotFoundError:
                    # A concurrent delete may remove the (then empty) folder between our mkdir
                    # and our rename: one more try settles it.
                    if attempt == 2 or not temp.exists():
                        raise
            _fsync_folder(target.parent)

    def _make_folders(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, fsyncing each parent that gained an entry."""
        missing: list[Path] = []
        current = folder
        while not current.is_dir():
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                path.mkdir(mode=_DIR_MODE)
            except FileExistsError:
                if not path.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, "a key is in the way") from None
                continue
            _fsync_folder(path.parent)

    def _remove_empty_folders(self, folder: Path) -> None:
        """Remove ``folder`` and its parents while empty, stopping at objects/ itself."""
        while folder != self._objects and self._objects in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone, or raced with a put): stop here
                return
            folder = folder.parent

    def _read(self, path: Path, chunk_size: int) -> Iterator[bytes]:
        try:
            source = path.open("rb", buffering=0)
        except FileNotFoundError:
            raise NotFound("no object under this key") from None  # deleted since open() looked
        except OSError as exc:
            raise StorageUnavailable("local object store failed while reading an object") from exc
        with source:
            while True:
                with _disk_errors("reading an object"):
                    chunk = source.read(chunk_size)
                if not chunk:
                    return
                yield chunk


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raise(error: OSError) -> None:
    """os.walk ignores unreadable folders unless told otherwise: a listing must not lie."""
    raise error
