"""The task queue: how the API and the commands hand work to the Celery workers.

A task is sent by its NAME with Celery's ``send_task``, so a sender needs the broker, never the
task code (``api`` and ``infra`` do not import ``workers``). Its arguments are ids and nothing
else: brokers keep messages in clear and may log them. Callers enqueue only after the
transaction that recorded the work has committed; a send that fails raises
``QueueUnavailable``, and the periodic sweeps re-send work that stayed pending, so a lost send
delays the work but never loses it.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any, Protocol

from celery import Celery
from kombu.exceptions import KombuError
from sqlalchemy.exc import SADeprecationWarning

from infra.settings import Settings
from vault.errors import QueueUnavailable

EXTRACTS_BUILD = "medvault.extracts.build"
EXTRACTS_SWEEP = "medvault.extracts.sweep"
RETENTION_RUN = "medvault.retention.run"
RETENTION_PURGE = "medvault.retention.purge"
KEYS_ROTATE = "medvault.keys.rotate"
EXPORTS_BUILD = "medvault.exports.build"
EXPORTS_SWEEP = "medvault.exports.sweep"
STORAGE_SWEEP = "medvault.storage.sweep"
TASK_NAMES = frozenset(
    {
        EXTRACTS_BUILD,
        EXTRACTS_SWEEP,
        RETENTION_RUN,
        RETENTION_PURGE,
        KEYS_ROTATE,
        EXPORTS_BUILD,
        EXPORTS_SWEEP,
        STORAGE_SWEEP,
    }
)

# A sender (an API request) waits for the broker at most about this long before it gives up:
# the work is already committed, and the sweep sends it later.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3}
BROKER_CONNECTION_TIMEOUT_SECONDS = 3.0
RESULTS_KEPT = timedelta(days=1)

# kombu's SQLAlchemy transport (the embedded broker) declares a `noload` relationship, which
# SQLAlchemy 2.1 deprecates; harmless, and not ours to fix.
warnings.filterwarnings(
    "ignore", message="The ``noload`` loader strategy", category=SADeprecationWarning
)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration, shared by the workers, beat and every sender.

    JSON only (never pickle: a message must not be able to run code); late acknowledgement and
    rejection when the pool process dies, so a task whose process was killed runs again (every
    task is idempotent); one message reserved at a time, so a killed worker strands at most one.
    """
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.worker_concurrency,
        "task_default_queue": settings.task_queue,
        "task_track_started": True,
        "result_expires": RESULTS_KEPT,
        "result_extended": False,  # the result backend keeps no task arguments
        "timezone": "UTC",
        "enable_utc": True,
        "broker_connection_timeout": BROKER_CONNECTION_TIMEOUT_SECONDS,
        "broker_connection_retry_on_startup": True,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


def check_task(name: str, args: tuple[str, ...]) -> None:
    """Refuse a task name that no worker has and any argument that is not an id string."""
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}")
    if not all(isinstance(arg, str) for arg in args):
        raise TypeError("task arguments are ids as strings")


class TaskQueue(Protocol):
    """Where committed work is handed to the workers."""

    def enqueue(self, name: str, *args: str) -> None:
        """Send task ``name`` with id arguments; raises ``QueueUnavailable`` if it cannot."""
        ...

    def close(self) -> None: ...


class CeleryTaskQueue:
    """A ``TaskQueue`` on the configured Celery broker (send only; it never reads results)."""

    def __init__(self, settings: Settings) -> None:
        self._celery = Celery("medvault-sender", set_as_current=False)
        # No result backend on the sending side: nobody here waits for a result, and a Redis
        # backend would otherwise subscribe to every sent task's result channel.
        self._celery.config_from_object({**celery_config(settings), "result_backend": None})

    def enqueue(self, name: str, *args: str) -> None:
        check_task(name, args)
        try:
            self._celery.send_task(name, args=list(args))
        except (KombuError, OSError):
            # The broker's message may name its address or credentials: keep it out of the answer
            # and out of the logged chain.
            raise QueueUnavailable("task queue unavailable") from None

    def close(self) -> None:
        self._celery.close()
