"""The structured access log: one JSON line per request, written by a pure ASGI middleware.

A line holds the time, method, route *template* (``/links/{token}``, never the raw path:
partner link tokens travel in paths), status, duration, bytes sent, the anonymised client
address and a request id (also returned as ``X-Request-ID``). Never the query string, headers
or bodies. Lines go to daily files kept 13 months (``vault.audit.access_logs``).

The request id is also bound to structlog's context variables while the request runs, so every
log line written on its behalf (``infra.logging``) carries it as ``request_id``.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vault.audit.access_logs import AccessLogSink, DailyFileSink, expired_access_logs
from vault.audit.addresses import anonymise_address

__all__ = ["AccessLogMiddleware", "DailyFileSink", "expired_access_logs", "route_template"]

UNMATCHED_ROUTE = "<unmatched>"
REQUEST_ID_HEADER = b"x-request-id"

_logger = logging.getLogger(__name__)


class AccessLogMiddleware:
    """Writes one access-log record per HTTP request to ``sink``, after the response ends."""

    def __init__(self, app: ASGIApp, *, sink: AccessLogSink) -> None:
        self.app = app
        self.sink = sink

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        response: dict[str, int] = {"status": 500, "bytes": 0}

        async def send_and_measure(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode()),
                ]
            elif message["type"] == "http.response.body":
                response["bytes"] += len(message.get("body", b""))
            await send(message)

        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_and_measure)
        finally:
            record = _record(scope, response, started_at, started, request_id)
            try:
                self.sink.write(record, at=started_at)
            except OSError as error:  # a full disk must not turn answers into errors
                _logger.warning("access log not written: %s", error.strerror)
            structlog.contextvars.reset_contextvars(**bound)


def route_template(scope: Scope) -> str:
    """The matched route's template (``/l/{token}``), never the raw path; ``<unmatched>``."""
    route = scope.get("route")
    return getattr(route, "path", None) or UNMATCHED_ROUTE


def _record(
    scope: Scope,
    response: dict[str, int],
    started_at: datetime,
    started: float,
    request_id: str,
) -> dict[str, Any]:
    client = scope.get("client")
    return {
        "time": started_at.isoformat(timespec="milliseconds"),
        "request_id": request_id,
        "method": scope["method"],
        "route": route_template(scope),
        "status": response["status"],
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "bytes_sent": response["bytes"],
        "client": anonymise_address(client[0] if client else None),
    }
