"""The health checks are matched before every router, so the first probe after a start does not
wait while FastAPI builds the routes of the routers it walks past (it does that lazily, on the
first request that reaches each router: 0.2-0.5 s for all of them, more on a busy host)."""

from __future__ import annotations

from fastapi import FastAPI

from tests.apiharness import ApiHarness

HEALTH_PATHS = {"/healthz", "/readyz"}


def test_health_checks_come_before_every_router(api: ApiHarness) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    own = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    paths = [getattr(route, "path", None) for route in app.router.routes]
    last_health = max(paths.index(path) for path in HEALTH_PATHS)
    assert set(paths[: last_health + 1]) <= own | HEALTH_PATHS


def test_health_checks_answer(api: ApiHarness) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ok"
