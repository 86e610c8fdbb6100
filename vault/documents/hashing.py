"""SHA-256 computed on a worker thread beside encryption.

hashlib releases the GIL for large buffers, so hashing frame N while AES-GCM encrypts frame
N+1 costs almost no wall time; in series, SHA-256 (~1.7 GB/s) would be the slowest step.
"""

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundSha256:
    """Feeds chunks, in order, to one SHA-256 on a single worker thread; bounded backlog."""

    def __init__(self, *, max_pending: int = 4) -> None:
        self._hash = hashlib.sha256()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._pending: deque[Future[None]] = deque()
        self._max_pending = max_pending
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._pending.append(self._pool.submit(self._hash.update, chunk))
        if len(self._pending) > self._max_pending:
            self._pending.popleft().result()

    def passing_through(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield each chunk unchanged after queueing it for hashing."""
        for chunk in chunks:
            # The worker reads the chunk later: it must be immutable, never a reused buffer.
            frozen = chunk if isinstance(chunk, bytes) else bytes(chunk)
            self.update(frozen)
            yield frozen

    def hexdigest(self) -> str:
        while self._pending:
            self._pending.popleft().result()
        self._pool.shutdown()
        return self._hash.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
