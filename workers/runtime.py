"""The worker process's runtime: built once per process from the settings, never shared across
a fork (the prefork pool's children each build their own engine and connections)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlmodel import Session

from infra.settings import Settings
from infra.wiring import Runtime, build_runtime

_runtimes: dict[int, Runtime] = {}


@cache
def worker_settings() -> Settings:
    """The settings of this worker or beat process, read from the environment once."""
    return Settings()


def worker_runtime() -> Runtime:
    """This process's runtime, built on first use.

    Keyed by process id: a runtime built before a fork holds the parent's database connections
    and must not be used by the child.
    """
    pid = os.getpid()
    runtime = _runtimes.get(pid)
    if runtime is None:
        runtime = _runtimes[pid] = build_runtime(worker_settings())
    return runtime


@contextmanager
def worker_session() -> Iterator[tuple[Runtime, Session]]:
    """The runtime and a new database session for one task; the session is closed after.

    The task commits what it did; anything not committed when the task raises is rolled back.
    """
    runtime = worker_runtime()
    with runtime.sessions() as session:
        yield runtime, session
