"""The protocol every blob store implements (S3 and compatible, local folder)."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class ListedObject:
    """An object as a listing shows it: its key and when it was last written (UTC-aware)."""

    key: str
    modified_at: datetime


class BlobStore(Protocol):
    """Stores opaque (already encrypted) objects under string keys.

    ``put`` is all or nothing: the object becomes visible only once every chunk was written;
    on any failure, including an exception raised by ``chunks`` itself, nothing is visible and
    nothing is left behind (the S3 multipart upload is aborted, the temp file removed), and the
    exception propagates (vendor errors translated to StorageUnavailable).

    Keys follow one rule in every store (vault/storage/object_keys.py): segments of
    ``[A-Za-z0-9._-]`` joined by ``/``, no empty, ``.`` or ``..`` segment. Any other key raises
    ValueError before the store does any I/O.
    """

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Write the object from an iterable of chunks; return the number of bytes written."""
        ...

    def open(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the object back in chunks of at most ``chunk_size`` bytes.

        Raises NotFound, at the call or (if the object vanishes right after) at the first chunk;
        StorageUnavailable at any chunk if the store fails mid-stream. The iterator may be
        paused and resumed (``break`` out of a for loop, then iterate it again).
        """
        ...

    def delete(self, key: str) -> None:
        """Delete the object and every stored version of it. Idempotent."""
        ...

    def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every object key starting with ``prefix``, sorted (for orphan cleanup and tests)."""
        ...

    def listing(self, prefix: str = "") -> Iterator[ListedObject]:
        """Like ``keys``, with each object's last-write time (for the orphan sweep)."""
        ...

    def abort_incomplete_uploads(self, *, older_than: datetime) -> int:
        """Remove what uploads started before ``older_than`` and never finished left behind
        (S3 multipart uploads, local temp files); return how many were removed."""
        ...

    def check(self) -> None:
        """Raise StorageUnavailable unless the store answers."""
        ...
