"""Prometheus multiprocess mode: where the processes of one ``medvault serve`` or ``medvault
worker`` keep their counters, and the registry a scrape reads them through.

uvicorn's worker processes and Celery's pool processes each count in their own memory-mapped
files in one folder (``PROMETHEUS_MULTIPROC_DIR``); a scrape adds them up. prometheus_client
decides between in-memory and file-backed values when it is first imported, so the command that
starts the processes prepares the folder and sets the variable *before* anything imports it,
and empties the folder before any child starts (never a child: it would erase its siblings'
counts). This module therefore imports prometheus_client only inside functions.

``serve`` and ``worker`` each get a subfolder of ``metrics_dir``, so a ``medvault up`` (both on
one machine) never adds the API's counts to the worker's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PRIVATE_DIR_MODE = 0o700


def prepare_metrics_dir(metrics_dir: Path, role: Literal["serve", "worker"]) -> Path:
    """Create (0700) and empty ``metrics_dir/role``; return it. Call it in the parent process,
    before any child process starts."""
    metrics_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    metrics_dir.chmod(PRIVATE_DIR_MODE)
    folder = metrics_dir / role
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)
    elif folder.exists() or folder.is_symlink():
        folder.unlink()
    folder.mkdir(mode=PRIVATE_DIR_MODE)
    return folder


def multiprocess_dir() -> Path | None:
    """The folder this process counts in, or None when it counts in memory only."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


def scrape_registry() -> CollectorRegistry:
    """A registry that reads every process's counters of this folder (multiprocess mode), or,
    without one, this process's own metrics."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    folder = multiprocess_dir()
    if folder is not None:
        MultiProcessCollector(registry, path=str(folder))
    else:
        registry.register(_Delegate(REGISTRY))
    return registry


class _Delegate:
    """Yields another registry's metrics (the default one, in single-process mode)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


def forget_this_process() -> None:
    """What prometheus_client wants when a process of a multiprocess group exits: its live
    gauges' files go (medvault has none today; counters and histograms stay, as they should)."""
    folder = multiprocess_dir()
    if folder is None:
        return
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(os.getpid(), str(folder))
