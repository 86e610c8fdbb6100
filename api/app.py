"""The application factory: ``uvicorn --factory api.app:create_app`` (``medvault serve``)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api import metrics
from api.access_log import AccessLogMiddleware, DailyFileSink
from api.problems import document_problems, install_problem_handlers
from api.routers import (
    audit,
    auth,
    cases,
    consents,
    documents,
    erasure,
    exports,
    extracts,
    links,
    partners,
    retention,
    rights,
    surveys,
    transfers,
    users,
)
from api.security_headers import SecurityHeadersMiddleware
from api.web import analysis, console, home, patient, privacy
from api.web import rights as rights_pages
from api.web.context import SignInRequired, sign_in_redirect
from infra.metrics import forget_this_process
from infra.settings import Settings
from infra.tasks import TaskQueue
from infra.wiring import Runtime, build_runtime, readiness
from vault.clock import utcnow
from vault.notifications.interfaces import Notifier

ROUTERS = (
    auth.router,
    users.router,
    cases.router,
    documents.router,
    consents.router,
    partners.router,
    transfers.router,
    links.router,
    audit.router,
    surveys.router,
    extracts.router,
    retention.router,
    rights.router,
    exports.router,
    erasure.router,
)
# The pages (HTML for people; not part of the API's OpenAPI document).
PAGE_ROUTERS = (
    home.router,
    patient.router,
    rights_pages.router,
    console.router,
    analysis.router,
    privacy.router,
)
STATIC = Path(__file__).with_name("static")

DESCRIPTION = """\
A secure intermediary for medical documents. Patients file treatment requests and upload
records; coordinators forward them to partners with a legal basis; partners download through
expiring links with a separate access code. Every error is RFC 9457 `application/problem+json`.
"""


def _operation_id(route: APIRoute) -> str:
    # Stable, readable operation ids (the route function's name) for clients and the tests.
    return route.name


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    notifier: Notifier | None = None,
    tasks: TaskQueue | None = None,
) -> FastAPI:
    """Build the runtime from ``settings`` (read from the environment when not given).

    ``clock``, ``notifier`` and ``tasks`` replace the real ones in tests.
    """
    runtime = build_runtime(settings or Settings())
    if notifier is not None:
        runtime = dataclasses.replace(runtime, notifier=notifier)
    if tasks is not None:
        runtime.tasks.close()
        runtime = dataclasses.replace(runtime, tasks=tasks)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.close()
        forget_this_process()

    app = FastAPI(
        title="medvault",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.runtime = runtime
    app.state.clock = clock or utcnow
    install_problem_handlers(app)
    app.add_exception_handler(SignInRequired, _to_sign_in)

    # The health checks come before every router: routes are matched in order, and FastAPI
    # builds an included router's routes on the first request that walks through it (0.2-0.5 s
    # for all of them on an idle host, 0.7 s under upload load): a probe must not pay for that.
    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        """The process is up (liveness); says nothing about the services behind it."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """Every backing service answers (readiness); 503 names those that do not."""
        return _readiness_response(runtime)

    for router in ROUTERS + PAGE_ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(metrics.router)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(metrics.MetricsMiddleware)
    app.add_middleware(AccessLogMiddleware, sink=DailyFileSink(runtime.settings.access_log_dir))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _to_sign_in(request: Request, _error: Exception) -> Response:
    return sign_in_redirect(request)


def _readiness_response(runtime: Runtime) -> JSONResponse:
    checks = readiness(runtime)
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
