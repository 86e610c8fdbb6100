"""The API's Prometheus metrics and ``GET /metrics``.

Labels carry route *templates*, methods, statuses, kinds and outcomes only: never an id, a
name, a raw path (partner link tokens travel in paths) or anything of a person. Counters live
in prometheus_client's multiprocess files when ``medvault serve`` runs several processes
(``infra.metrics``); the audit chain's gauges are read from the database at scrape time.

``GET /metrics`` exists only when ``metrics_token`` is set (404 otherwise, like any unknown
path) and then needs ``Authorization: Bearer <metrics_token>``, compared in constant time;
anything else is 401 problem+json. No user's access token opens it.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access_log import route_template
from infra.metrics import scrape_registry
from infra.wiring import Runtime
from vault.audit.models import AuditAction, AuditEvent, AuditHead
from vault.clock import as_utc
from vault.errors import NotAuthenticated

_logger = logging.getLogger(__name__)

# Methods a client can send are free text: anything not listed is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

DownloadKind = Literal["document", "link_document", "link_archive", "export", "extract"]

HTTP_REQUESTS = Counter(
    "medvault_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "medvault_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response (body included), by route "
    "template and method.",
    ["route", "method"],
)
UPLOAD_BYTES = Counter(
    "medvault_upload_bytes",
    "Bytes of uploaded documents received (counted as they arrive, refused uploads included).",
)
DOWNLOAD_BYTES = Counter(
    "medvault_download_bytes",
    "Plaintext bytes sent out, by what was downloaded.",
    ["kind"],
)
LINK_DOWNLOADS = Counter(
    "medvault_link_downloads",
    "Partner link download attempts: `ok` released a document or archive, `refused` did not "
    "(wrong code, expired, revoked, used up, locked, unknown).",
    ["kind", "outcome"],
)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


class MetricsMiddleware:
    """Counts every HTTP request by route template, method and status, and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = route_template(scope)
            method = method_label(scope["method"])
            HTTP_REQUESTS.labels(route, method, str(status["code"])).inc()
            HTTP_DURATION.labels(route, method).observe(time.perf_counter() - started)


def count_upload(size: int) -> None:
    UPLOAD_BYTES.inc(size)


def counted(chunks: Iterator[bytes], kind: DownloadKind) -> Iterator[bytes]:
    """``chunks`` unchanged, each one counted as it is sent; closing this closes ``chunks``."""
    counter = DOWNLOAD_BYTES.labels(kind)
    try:
        for chunk in chunks:
            counter.inc(len(chunk))
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def count_link_download(kind: Literal["document", "archive"], *, ok: bool) -> None:
    LINK_DOWNLOADS.labels(kind, "ok" if ok else "refused").inc()


class AuditChainCollector(Collector):
    """The audit chain's length and its last verification, read from the database when
    scraped (so every API process reports the same values)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        try:
            head_seq, last = self._read()
        except sa.exc.SQLAlchemyError as error:
            _logger.warning("audit metrics not read: %s", type(error).__name__)
            return
        length = GaugeMetricFamily(
            "medvault_audit_chain_length",
            "Events ever appended to the audit chain (the sequence number of its head).",
        )
        length.add_metric([], head_seq)
        yield length
        if last is None:
            return
        at, ok = last
        when = GaugeMetricFamily(
            "medvault_audit_last_verification_timestamp_seconds",
            "When the audit chain was last verified (Unix time); absent if it never was.",
        )
        when.add_metric([], at)
        yield when
        result = GaugeMetricFamily(
            "medvault_audit_last_verification_ok",
            "1 if the last verification found the audit chain intact, 0 if it found it broken.",
        )
        result.add_metric([], 1.0 if ok else 0.0)
        yield result

    def _read(self) -> tuple[int, tuple[float, bool] | None]:
        events = AuditEvent.__table__  # type: ignore[attr-defined]
        head = AuditHead.__table__  # type: ignore[attr-defined]
        with self._runtime.sessions() as session:
            head_seq = session.execute(sa.select(head.c.seq)).scalar_one_or_none() or 0
            row = session.execute(
                sa.select(events.c.at, events.c.outcome)
                .where(events.c.action == str(AuditAction.AUDIT_VERIFY))
                .order_by(events.c.seq.desc())
                .limit(1)
            ).one_or_none()
        if row is None:
            return int(head_seq), None
        return int(head_seq), (as_utc(row.at).timestamp(), row.outcome == "ok")


router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."},
        401: {"description": "Missing or wrong metrics token."},
        404: {"description": "No metrics token is set: there is no metrics endpoint."},
    },
)
def get_metrics(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Response:
    """Prometheus metrics of every API process (counters) and of the audit chain; needs
    ``Authorization: Bearer <MEDVAULT_METRICS_TOKEN>``."""
    runtime: Runtime = request.app.state.runtime
    expected = runtime.settings.metrics_token
    if expected is None:
        raise HTTPException(status_code=404)
    scheme, _, given = (authorization or "").partition(" ")
    wanted = expected.get_secret_value().encode()
    if not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), wanted)):
        raise NotAuthenticated("this needs the metrics token")
    registry = scrape_registry()
    registry.register(AuditChainCollector(runtime))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
