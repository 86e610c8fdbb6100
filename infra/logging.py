"""Structured logs: one JSON object per line on stdout, for medvault's own loggers and every
library's (uvicorn, Celery, SQLAlchemy ...), configured once per process.

Each line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and ``event``, plus what is
bound to structlog's context variables at that moment: ``request_id`` while a request runs (the
value returned as ``X-Request-ID``, bound by ``api.access_log``), ``task_id`` and ``task`` while
a Celery task runs (``workers.observability``). An exception is written as its class name and
the frames it passed through, never its message: messages of database drivers and libraries
can quote the values they were given.

Log calls pass ids, counts, fixed phrases and class names only; never names, e-mail addresses,
tokens, codes or free text. The daily access-log files (``api.access_log``) are separate.

``medvault serve`` hands :func:`logging_config` to uvicorn, which applies it in each of its
worker processes; building :class:`JsonFormatter` configures structlog in that process too.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import traceback
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

DEFAULT_LEVEL = "INFO"


def _safe_exception(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Replace ``exc_info`` by the exception's class and frames, without its message."""
    exc_info = event.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if isinstance(exc_info, tuple) and exc_info[0] is not None:
        kind, _error, trace = exc_info
        event["exception"] = kind.__name__
        event["stack"] = [
            f"{frame.filename}:{frame.lineno} in {frame.name}"
            for frame in traceback.extract_tb(trace)
        ]
    event.pop("stack_info", None)
    return event


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


class JsonFormatter(structlog.stdlib.ProcessorFormatter):
    """Renders structlog's and the standard library's records as one JSON line each."""

    def __init__(self) -> None:
        _configure_structlog()  # this process's structlog loggers go through this formatter
        super().__init__(
            foreign_pre_chain=_shared_processors(),
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _safe_exception,
                structlog.processors.JSONRenderer(sort_keys=False),
            ],
        )


def logging_config(level: str = DEFAULT_LEVEL) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of every medvault process (also given to uvicorn)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stdout"]},
        # uvicorn's loggers carry handlers of their own by default: let them reach the root's.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "celery", "celery.task")
        }
        | {
            # Its lines print raw paths (partner link tokens travel in paths): never written;
            # the application writes its own access log with route templates.
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }


def configure_logging(level: str = DEFAULT_LEVEL) -> None:
    """Send every log record of this process to stdout as JSON lines (safe to call again)."""
    logging.config.dictConfig(logging_config(level))
