"""The application factory: ``uvicorn --factory api.app:create_app`` (``medvault serve``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from infra.settings import Settings
from infra.wiring import Runtime, build_runtime, readiness


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the runtime from ``settings`` (read from the environment when not given)."""
    runtime = build_runtime(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.close()

    app = FastAPI(title="medvault", lifespan=lifespan)
    app.state.runtime = runtime

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up (liveness); says nothing about the services behind it."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Every backing service answers (readiness); 503 names those that do not."""
        return _readiness_response(runtime)

    return app


def _readiness_response(runtime: Runtime) -> JSONResponse:
    checks = readiness(runtime)
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
