"""The Celery application of ``medvault worker`` and ``medvault beat``.

Configured from the settings when Celery first reads its configuration (not at import), with
``infra.tasks.celery_config``: the same JSON-only, late-acknowledging configuration the senders
use, plus the beat schedule. Tasks are declared with ``medvault_task``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from infra.tasks import celery_config
from keys import errors as key_errors
from vault.errors import KmsUnavailable, StorageUnavailable
from workers import observability  # noqa: F401 - connects the logging and metrics signals
from workers.runtime import worker_settings
from workers.schedule import BEAT_SCHEDULE

# Only an unreachable object store or key service is worth another try; anything else (an
# integrity failure above all) is final. Backoff doubles up to Celery's ten-minute cap.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    StorageUnavailable,
    KmsUnavailable,
    key_errors.KmsUnavailable,  # raised by keys/ directly, for tasks that call the key store
)
MAX_RETRIES = 8

celery_app = Celery("medvault", include=["workers.tasks"])


@celery_app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    sender.config_from_object(
        {
            **celery_config(worker_settings()),
            "beat_schedule": BEAT_SCHEDULE,
            # Celery's consumer with a repair: a lost broker connection must not end the worker.
            "worker_consumer": "workers.consumer:Consumer",
        }
    )


def medvault_task(name: str) -> Callable[[Callable[..., Any]], Any]:
    """Declare a task of medvault: taking ids, idempotent, retried only when a backing service
    is unreachable, acknowledged only once it has finished."""
    decorator: Callable[[Callable[..., Any]], Any] = celery_app.task(
        name=name,
        bind=False,
        autoretry_for=RETRYABLE_ERRORS,
        retry_backoff=True,
        retry_jitter=True,
        max_retries=MAX_RETRIES,
        acks_late=True,
    )
    return decorator
