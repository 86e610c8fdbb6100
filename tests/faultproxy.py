"""FaultProxy: a TCP proxy for tests that breaks the connection to a real service on command.

Put it between a client and any TCP service (S3 or KMS on moto, PostgreSQL, Redis, RabbitMQ)
and point the client at ``127.0.0.1:proxy.port``::

    with FaultProxy("127.0.0.1", 5432) as proxy:
        engine = make_engine(f"postgresql+psycopg://u:p@127.0.0.1:{proxy.port}/db")
        proxy.cut_after(10_000)     # reset the connection carrying byte 10,001 client->server
        proxy.down()                # refuse every new connection, reset the open ones
        proxy.up()                  # and back
        proxy.delay(2.0)            # hold every forwarded read 2 s (read timeouts)

Faults:

``cut_after(n)``
    One shot. Counting from the call, client->server bytes are forwarded until ``n`` have
    passed; the connection that carries byte ``n + 1`` gets exactly the first ``n`` bytes
    delivered and is then reset (RST, not FIN) on both sides. Later connections pass. Bytes are
    counted across connections (a client on short-lived connections, like the moto server that
    closes after every response, is cut at an offset of its whole exchange), or per connection
    with ``per_connection=True``. ``direction="downstream"`` counts server->client bytes instead
    (a download cut mid-stream). ``then_down=True`` also takes the proxy down at the moment of
    the cut, so that the client's clean-up calls fail too. Arming again replaces a cut that
    has not fired yet.
``down(refuse=True)`` / ``up()``
    Down: every open connection is reset; new connections are refused (the listening socket is
    closed, so the client gets ECONNREFUSED at once) or, with ``refuse=False``, accepted and
    reset straight away. ``down`` returns once the open connections are gone.
``delay(seconds)``
    Every read forwarded in either direction is held ``seconds`` first (0 turns it off). One
    thread per connection forwards both directions, so a held read holds the connection.

Counters: ``connections``, ``bytes_upstream``, ``bytes_downstream``, ``cuts``.

Threads only, no asyncio, so that it works beside any client library. Linux: an exact cut relies
on TIOCOUTQ to let the kept bytes leave before the reset (elsewhere it waits briefly instead).
"""

from __future__ import annotations

import contextlib
import fcntl
import select
import socket
import struct
import termios
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

Direction = Literal["upstream", "downstream"]

_TICK = 0.05  # how often an idle thread looks at the controls
_READ_SIZE = 256 * 1024
_DRAIN_LIMIT = 2.0  # seconds a cut waits for the kept bytes to leave before resetting anyway


@dataclass
class _Cut:
    remaining: int
    direction: Direction
    then_down: bool
    per_connection: bool
    seen: dict[int, int] = field(default_factory=dict)  # per connection: bytes counted


@dataclass(eq=False)
class _Connection:
    client: socket.socket
    upstream: socket.socket | None = None
    killed: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)


class FaultProxy:
    """A TCP proxy to ``target_host:target_port`` on ``127.0.0.1:<port>``; see the module doc."""

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self._listen_host = listen_host
        self.port = 0
        self.connections = 0
        self.bytes_upstream = 0
        self.bytes_downstream = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._down = False
        self._delay = 0.0
        self._cut: _Cut | None = None
        self._live: set[_Connection] = set()
        self._stopping = threading.Event()
        self._acceptor: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._listener = self._listen(self.port)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._close_listener()
            live = list(self._live)
        for conn in live:
            conn.killed.set()
        for conn in live:
            conn.finished.wait(5)
        if self._acceptor is not None:
            self._acceptor.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, for HTTP clients."""
        return f"http://{self._listen_host}:{self.port}"

    # -- controls --------------------------------------------------------------------------

    def cut_after(
        self,
        n_bytes: int,
        *,
        direction: Direction = "upstream",
        then_down: bool = False,
        per_connection: bool = False,
    ) -> None:
        """Arm a one-shot cut after ``n_bytes`` more bytes in ``direction`` (see the module doc)."""
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        with self._lock:
            self._cut = _Cut(n_bytes, direction, then_down, per_connection)

    def down(self, *, refuse: bool = True) -> None:
        """Reset every open connection; refuse (or accept and reset) every new one until up()."""
        with self._lock:
            live = self._go_down(refuse=refuse)
        for conn in live:
            conn.finished.wait(5)

    def up(self) -> None:
        with self._lock:
            self._down = False
            if self._listener is None and not self._stopping.is_set():
                self._listener = self._listen(self.port)

    def delay(self, seconds: float) -> None:
        self._delay = max(0.0, seconds)

    # -- internals -------------------------------------------------------------------------

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self._listen_host, port))
        listener.listen(128)
        return listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _go_down(self, *, refuse: bool) -> list[_Connection]:
        """Under the lock: mark down, stop listening if refusing, kill the live connections."""
        self._down = True
        if refuse:
            self._close_listener()
        for conn in self._live:
            conn.killed.set()
        return list(self._live)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                self._stopping.wait(_TICK)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], _TICK)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # closed under us by down() or stop()
                continue
            with self._lock:
                if self._down or self._stopping.is_set():
                    _reset(client)
                    continue
                conn = _Connection(client)
                self._live.add(conn)
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: _Connection) -> None:
        try:
            self._pump(conn)
        except OSError:
            pass  # a side went away abruptly: the other one gets a reset below
        finally:
            _reset(conn.client)
            if conn.upstream is not None:
                _reset(conn.upstream)
            with self._lock:
                self._live.discard(conn)
            conn.finished.set()

    def _pump(self, conn: _Connection) -> None:
        try:
            conn.upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            return  # the service is down: the client sees a reset
        if conn.killed.is_set():
            return
        conn.client.setblocking(False)
        conn.upstream.setblocking(False)
        peer = {conn.client: conn.upstream, conn.upstream: conn.client}
        open_readers = [conn.client, conn.upstream]
        while open_readers and not conn.killed.is_set():
            ready, _, _ = select.select(open_readers, [], [], _TICK)
            for source in ready:
                data = source.recv(_READ_SIZE)
                if not data:  # orderly close of one side: pass it on, keep the other going
                    open_readers.remove(source)
                    with contextlib.suppress(OSError):
                        peer[source].shutdown(socket.SHUT_WR)
                    continue
                direction: Direction = "upstream" if source is conn.client else "downstream"
                if not self._forward(conn, direction, data, peer[source]):
                    return
        if not conn.killed.is_set():  # both sides closed in order: close in order too
            conn.client.close()
            conn.upstream.close()

    def _forward(
        self, conn: _Connection, direction: Direction, data: bytes, target: socket.socket
    ) -> bool:
        """Send ``data`` on, applying delay and cut; False once the connection must die."""
        if self._delay and conn.killed.wait(self._delay):
            return False
        keep = self._claim_cut(conn, direction, len(data))
        if keep is None:
            if not _send_all(target, data, conn.killed):
                return False
            self._count(direction, len(data))
            return True
        # Deliver the kept bytes even if then_down just killed this connection with the others.
        if _send_all(target, data[:keep], self._stopping):
            self._count(direction, keep)
            _drain(target)
        return False

    def _claim_cut(self, conn: _Connection, direction: Direction, size: int) -> int | None:
        """How many of ``size`` bytes to keep before cutting, or None to pass them all."""
        with self._lock:
            if conn.killed.is_set():
                return 0
            cut = self._cut
            if cut is None or cut.direction != direction:
                return None
            key = id(conn) if cut.per_connection else 0
            counted = cut.seen.get(key, 0)
            if counted + size <= cut.remaining:
                cut.seen[key] = counted + size
                return None
            self._cut = None
            self.cuts += 1
            if cut.then_down:
                self._go_down(refuse=True)
            return cut.remaining - counted

    def _count(self, direction: Direction, size: int) -> None:
        with self._lock:
            if direction == "upstream":
                self.bytes_upstream += size
            else:
                self.bytes_downstream += size


def _send_all(sock: socket.socket, data: bytes, killed: threading.Event) -> bool:
    """Send every byte unless ``killed`` is set meanwhile (non-blocking socket)."""
    view = memoryview(data)
    while view:
        if killed.is_set():
            return False
        _, writable, _ = select.select([], [sock], [], _TICK)
        if writable:
            try:
                view = view[sock.send(view) :]
            except BlockingIOError:
                continue
    return True


def _drain(sock: socket.socket) -> None:
    """Wait until the kernel has sent what we queued, so that a reset does not discard it."""
    deadline = time.monotonic() + _DRAIN_LIMIT
    while time.monotonic() < deadline:
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, AttributeError):
            time.sleep(0.05)
            return
        if queued == 0:
            return
        time.sleep(0.001)


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: linger on, timeout zero."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
