"""The local keyring: root keys in a JSON file readable only by its owner (the embedded default).

The file maps each root key id (``local:<uuid>``) to its base64 key, creation time and state::

    {"format": "medvault-keyring", "version": 1,
     "root_keys": {"local:…": {"key": "…", "created_at": "…", "state": "active",
                               "description": "…"},
                   "local:…": {"created_at": "…", "state": "destroyed", "destroyed_at": "…"}}}

A destroyed key keeps its entry without the key, so using it answers KeyDestroyed, not
KeyNotFound. Every change writes a new file beside the old one (0600, fsync) and renames it
over the old one, under a thread lock and an ``flock`` on ``<file>.lock`` so that several
processes can share one keyring.

"Removed for good" means removed from the file. The file system may keep old blocks, and a
backup of the keyring keeps the key: keep the keyring out of the database backups, or use a KMS.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import json
import os
import stat
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keys.errors import (
    InsecureKeyring,
    KeyDestroyed,
    KeyNotFound,
    KeyringCorrupt,
    KmsUnavailable,
)
from keys.primitives import KEY_SIZE, unsafe_unwrap_key, unsafe_unwrap_keys, wrap_key

FORMAT = "medvault-keyring"
VERSION = 1
ID_PREFIX = "local:"
ACTIVE = "active"
DESTROYED = "destroyed"

Keyring = dict[str, dict[str, str]]


class LocalKeyringProvider:
    """A RootKeyProvider backed by a keyring file (created on first use, mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._thread_lock = threading.Lock()
        # The keyring as last read, with the identity of the file it came from. Every change
        # replaces the file (a new inode, by rename), so an unchanged identity means the
        # cached copy is current, also for changes made by other processes.
        self._cached: tuple[tuple[int, int, int, int], Keyring] | None = None

    def create_root_key(self, *, description: str) -> str:
        root_key_id = f"{ID_PREFIX}{uuid.uuid4()}"
        with self._locked():
            keyring = self._load()
            keyring[root_key_id] = {
                "key": base64.b64encode(os.urandom(KEY_SIZE)).decode("ascii"),
                "created_at": _now_iso(),
                "state": ACTIVE,
                "description": description,
            }
            self._save(keyring)
        return root_key_id

    def wrap(self, *, root_key_id: str, key: bytes, owner: str) -> bytes:
        return wrap_key(root_key=self._root_key(root_key_id), key=key, owner=owner)

    def unsafe_unwrap(self, *, root_key_id: str, wrapped: bytes, owner: str) -> bytes:
        return unsafe_unwrap_key(root_key=self._root_key(root_key_id), wrapped=wrapped, owner=owner)

    def unsafe_unwrap_many(
        self, *, root_key_id: str, items: Sequence[tuple[bytes, str]]
    ) -> list[bytes]:
        return unsafe_unwrap_keys(root_key=self._root_key(root_key_id), items=items)

    def destroy_root_key(self, root_key_id: str) -> None:
        with self._locked():
            keyring = self._load()
            entry = keyring.get(root_key_id)
            if entry is None or entry["state"] == DESTROYED:
                return
            keyring[root_key_id] = {
                "created_at": entry["created_at"],
                "state": DESTROYED,
                "destroyed_at": _now_iso(),
            }
            self._save(keyring)

    def check(self) -> None:
        with self._locked():
            self._load()

    def _root_key(self, root_key_id: str) -> bytes:
        entry = self._current_keyring().get(root_key_id)
        if entry is None:
            raise KeyNotFound("no such root key in the local keyring")
        if entry["state"] == DESTROYED:
            raise KeyDestroyed("the root key was destroyed")
        return base64.b64decode(entry["key"])

    def _current_keyring(self) -> Keyring:
        """The keyring as on disk now, read again only when the file was replaced since."""
        try:
            info = os.lstat(self.path)
        except OSError:
            info = None  # missing or unreadable: the locked read creates or explains it
        cached = self._cached
        if info is not None and cached is not None and cached[0] == _identity(info):
            self._require_private(info)  # permissions can change without a new file
            return cached[1]
        with self._locked():
            return self._load()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the thread lock and the cross-process lock; create the folder on first use."""
        with self._thread_lock:
            try:
                self._ensure_private_folder()
                lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise _unavailable(self.path, exc) from None
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(lock_fd)  # closing releases the flock

    def _ensure_private_folder(self) -> None:
        folder = self.path.parent
        if not folder.exists():
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder.chmod(0o700)  # mkdir's mode is filtered by the umask
        mode = folder.stat().st_mode
        # Whoever may write to the folder may swap the file, unless the sticky bit stops them.
        if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
            raise InsecureKeyring(
                f"the keyring folder {folder} is writable by group or others; "
                f"run `chmod 700 {folder}`"
            )

    def _load(self) -> Keyring:
        """Read the keyring (creating an empty one on first use); refuse an unsafe file."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            self._create_empty()
            return {}
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise InsecureKeyring(
                    f"the keyring {self.path} is a symbolic link; use the file itself"
                ) from None
            raise _unavailable(self.path, exc) from None
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            self._require_private(info)
            try:
                raw = file.read()
            except OSError as exc:
                raise _unavailable(self.path, exc) from None
        keyring = _parse(raw, self.path)
        self._cached = (_identity(info), dict(keyring))  # callers may change their copy
        return keyring

    def _require_private(self, info: os.stat_result) -> None:
        if not stat.S_ISREG(info.st_mode):
            raise InsecureKeyring(f"the keyring {self.path} is not a regular file")
        if info.st_uid != os.getuid():
            raise InsecureKeyring(
                f"the keyring {self.path} is not owned by the user running medvault; "
                f"run `chown {os.getuid()} {self.path}` and `chmod 600 {self.path}`"
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise InsecureKeyring(
                f"the keyring {self.path} is accessible by group or others; "
                f"run `chmod 600 {self.path}`"
            )

    def _create_empty(self) -> None:
        # Written like every change (temp file created O_EXCL 0600, fsync, rename), so that a
        # crash cannot leave a half-written keyring behind. The flock excludes a concurrent creator.
        self._save({})

    def _save(self, keyring: Keyring) -> None:
        """Replace the file atomically: a crash leaves the old keyring or the new, never half."""
        temporary = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(_serialise(keyring))
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, self.path)
            finally:
                temporary.unlink(missing_ok=True)
            _fsync_folder(self.path.parent)
        except OSError as exc:
            raise _unavailable(self.path, exc) from None


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def _serialise(keyring: Keyring) -> bytes:
    document = {"format": FORMAT, "version": VERSION, "root_keys": keyring}
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8")


def _parse(raw: bytes, path: Path) -> Keyring:
    corrupt = KeyringCorrupt(f"the keyring {path} is not a medvault keyring of version {VERSION}")
    try:
        document: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise corrupt
    if document.get("version") != VERSION or not isinstance(document.get("root_keys"), dict):
        raise corrupt
    keyring: Keyring = document["root_keys"]
    for entry in keyring.values():
        if not isinstance(entry, dict) or entry.get("state") not in (ACTIVE, DESTROYED):
            raise corrupt
        if entry["state"] == ACTIVE and not _is_key(entry.get("key")):
            raise corrupt
    return keyring


def _is_key(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == KEY_SIZE
    except binascii.Error:
        return False


def _fsync_folder(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unavailable(path: Path, exc: OSError) -> KmsUnavailable:
    reason = exc.strerror or type(exc).__name__
    return KmsUnavailable(f"the keyring {path} could not be used: {reason}")


def _now_iso() -> str:
    # Informational only (the database records key times): the keyring takes no ``now``.
    return datetime.now(UTC).isoformat()
