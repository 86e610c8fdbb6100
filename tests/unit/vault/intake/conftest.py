"""Fixtures for the intake tests: small limits, a private spool folder, a one-call runner,
and a check after every test that no spool file or file descriptor was left behind."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vault.intake import IntakeLimits, sanitised

# Small PDF child limits, so hostile PDFs end quickly; the rest as in production.
TEST_LIMITS = IntakeLimits(
    pdf_memory_bytes=256 * 1024 * 1024, pdf_cpu_seconds=5, pdf_wall_seconds=10.0
)


@dataclass(frozen=True)
class Outcome:
    media_type: str
    changes: tuple[str, ...]
    pages: int | None
    data: bytes


def open_fds() -> set[str]:
    return {os.readlink(f"/proc/self/fd/{fd}") for fd in _fd_numbers()}


def _fd_numbers() -> list[str]:
    return [fd for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")]


@pytest.fixture
def spool_dir(tmp_path: Path) -> Iterator[Path]:
    """A private spool folder; after the test it must be empty and no descriptor left open."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    fds_before = len(_fd_numbers())
    yield folder
    assert list(folder.iterdir()) == []
    assert len(_fd_numbers()) == fds_before
    assert not any(str(folder) in target for target in open_fds())


Run = Callable[..., Outcome]


@pytest.fixture
def spool_fds(spool_dir: Path) -> Callable[[], list[str]]:
    """Lists what this process has open inside the spool folder."""
    return lambda: [target for target in open_fds() if target.startswith(str(spool_dir))]


@pytest.fixture
def limits() -> IntakeLimits:
    return TEST_LIMITS


@pytest.fixture
def run(spool_dir: Path) -> Run:
    """Sanitise bytes completely; return the outcome."""

    def run_intake(data: bytes, limits: IntakeLimits = TEST_LIMITS) -> Outcome:
        with sanitised(io.BytesIO(data), limits=limits, spool_dir=spool_dir) as document:
            output = b"".join(document.chunks())
            return Outcome(document.media_type, document.changes, document.pages, output)

    return run_intake
