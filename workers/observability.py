"""What the worker reports about itself: JSON log lines carrying the task id, and Prometheus
metrics of its task runs and shreds, through Celery's signals.

Pool processes count in the multiprocess folder that ``medvault worker`` prepared
(``infra.metrics``); the worker's main process serves the sum of them over HTTP on
``worker_metrics_port`` (0: not at all). Labels are task names and outcomes only, never a
task's arguments.
"""

from __future__ import annotations

import logging
from typing import Any
from wsgiref.simple_server import WSGIServer

import structlog
from celery import signals
from prometheus_client import Counter, start_http_server

from infra.logging import configure_logging
from infra.metrics import forget_this_process, scrape_registry
from workers.runtime import worker_settings

_logger = logging.getLogger(__name__)

TASK_RUNS = Counter(
    "medvault_task_runs",
    "Task runs ended, by task name and outcome: `success`, `failure` (final) or `retry` "
    "(will run again).",
    ["task", "outcome"],
)
CASES_SHREDDED = Counter(
    "medvault_cases_shredded",
    "Cases crypto-shredded by the worker's retention runs (their case keys destroyed).",
)
PATIENTS_ERASED = Counter(
    "medvault_patients_erased",
    "Patients erased by the worker's retention runs (their last case shredded).",
)

UNKNOWN_TASK = "unknown"


def _task_name(sender: Any) -> str:
    name = getattr(sender, "name", None)
    return name if isinstance(name, str) and name.startswith("medvault.") else UNKNOWN_TASK


@signals.task_success.connect
def count_success(sender: Any = None, **_: Any) -> None:
    TASK_RUNS.labels(_task_name(sender), "success").inc()


@signals.task_failure.connect
def count_failure(sender: Any = None, **_: Any) -> None:
    TASK_RUNS.labels(_task_name(sender), "failure").inc()


@signals.task_retry.connect
def count_retry(sender: Any = None, **_: Any) -> None:
    TASK_RUNS.labels(_task_name(sender), "retry").inc()


def count_retention(*, shredded: int, patients_erased: int) -> None:
    CASES_SHREDDED.inc(shredded)
    PATIENTS_ERASED.inc(patients_erased)


@signals.task_prerun.connect
def bind_task(task_id: str | None = None, sender: Any = None, **_: Any) -> None:
    structlog.contextvars.bind_contextvars(task_id=task_id, task=_task_name(sender))


@signals.task_postrun.connect
def unbind_task(**_: Any) -> None:
    structlog.contextvars.unbind_contextvars("task_id", "task")


@signals.setup_logging.connect
def setup_logging(loglevel: Any = None, **_: Any) -> None:
    """JSON lines instead of Celery's own format (connecting here makes Celery leave logging
    to us), in the worker and in beat."""
    level = loglevel if isinstance(loglevel, str) else logging.getLevelName(loglevel or "INFO")
    configure_logging(str(level))


@signals.worker_init.connect
def serve_metrics(**_: Any) -> None:
    """In the worker's main process, before its pool starts: serve the pool's metrics."""
    settings = worker_settings()
    if settings.worker_metrics_port:
        start_metrics_server(settings.host, settings.worker_metrics_port)


def start_metrics_server(host: str, port: int) -> WSGIServer:
    """Serve the sum of this worker's processes' metrics at ``http://host:port/metrics`` from
    a thread of this process; the server is returned so that it can be shut down."""
    server, _thread = start_http_server(port, addr=host, registry=scrape_registry())
    _logger.info("worker metrics served on port %d", server.server_port)
    return server


@signals.worker_process_shutdown.connect
def forget_pool_process(**_: Any) -> None:
    forget_this_process()
