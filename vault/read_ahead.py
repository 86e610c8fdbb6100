"""Reading ahead: the next items of an iterator produced by a thread while the caller works.

A bulk build alternates between waiting for the database or the key provider, which release
the GIL (sqlite3 and psycopg while a query runs, boto3 while it waits for KMS), and decoding in
Python, which holds it. With the reading one step ahead in a thread, the two overlap on two
cores. Bounded: at most ``ahead`` items wait, so memory stays bounded by the batch size.
"""

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.1


class _Done:
    pass


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(source: Iterable[T], *, ahead: int = 1) -> Iterator[T]:
    """The items of ``source``, in order, read by a thread up to ``ahead`` items early.

    ``source`` is iterated (and, if it is a generator, closed) in that thread only, so a
    generator that holds a session keeps it on one thread. Its exception is raised here, in
    the caller's thread, where it would have been. A caller that stops early (``break``, an
    exception, ``close``) stops the thread and waits for it, so nothing outlives the loop.
    """
    handoff: queue.Queue[T | _Done | _Failed] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def hand_over(item: T | _Done | _Failed) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        items = iter(source)
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(_Done())
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            hand_over(_Failed(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
