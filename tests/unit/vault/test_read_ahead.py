"""Reading ahead in a thread: same items, same order, errors where they belong, nothing left."""

import threading
from collections.abc import Iterator

import pytest

from vault.read_ahead import read_ahead


class Boom(Exception):
    pass


def test_items_arrive_in_order_and_are_read_in_another_thread() -> None:
    readers: set[str] = set()

    def source() -> Iterator[int]:
        for number in range(100):
            readers.add(threading.current_thread().name)
            yield number

    assert list(read_ahead(source(), ahead=3)) == list(range(100))
    assert readers == {"read-ahead"}


def test_an_empty_source_ends_at_once() -> None:
    assert list(read_ahead(iter(()))) == []


def test_the_source_error_is_raised_in_the_callers_thread_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise Boom("source failed")

    items = read_ahead(source())
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(Boom, match="source failed"):
        next(items)


def test_a_caller_that_stops_early_closes_the_source_and_leaves_no_thread() -> None:
    closed = threading.Event()
    read = []

    def endless() -> Iterator[int]:
        number = 0
        try:
            while True:
                read.append(number)
                yield number
                number += 1
        finally:
            closed.set()

    before = threading.active_count()
    items = read_ahead(endless(), ahead=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()
    assert closed.is_set()
    assert threading.active_count() == before
    assert len(read) <= 5 + 2 + 1  # bounded: at most `ahead` waiting and one being read


def test_an_error_in_the_callers_loop_stops_the_reading() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.set()

    def consume() -> None:
        for item in read_ahead(source()):
            if item == 3:
                raise Boom("caller failed")

    before = threading.active_count()
    with pytest.raises(Boom):
        consume()
    assert closed.is_set()
    assert threading.active_count() == before
