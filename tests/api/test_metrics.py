"""GET /metrics: hidden without a token setting, 401 without the token, and counters that move
by exactly what was done; labels are route templates (no link token ever shows); the audit
chain's gauges; and the JSON log lines of a request carry its X-Request-ID, no personal data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families

from infra.logging import JsonFormatter
from tests.api.test_cases import open_case
from tests.api.test_links import fetch
from tests.api.test_transfers import forward, forwardable
from tests.apiharness import ApiHarness
from tests.factories import png_bytes
from vault.accounts.models import Role
from vault.audit.models import AuditEvent

TOKEN = "metrics-token-for-the-tests-" + "z" * 16
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def metered(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> ApiHarness:
    monkeypatch.setenv("MEDVAULT_METRICS_TOKEN", TOKEN)
    harness: ApiHarness = request.getfixturevalue("api")
    return harness


def scrape(api: ApiHarness) -> str:
    response = api.client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when it does not exist yet)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_without_a_token_setting_there_is_no_metrics_endpoint(api: ApiHarness) -> None:
    admin = api.user(Role.ADMIN)
    for headers in ({}, SCRAPE, admin.headers):
        response = api.client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


def test_a_missing_or_wrong_token_is_401_and_no_access_token_opens_it(metered: ApiHarness) -> None:
    admin = metered.user(Role.ADMIN)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        admin.headers,
    ):
        response = metered.client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("/not-authenticated")
        assert "medvault_" not in response.text

    response = metered.client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "medvault_http_requests_total" in response.text


def test_requests_are_counted_by_route_template_method_and_status(metered: ApiHarness) -> None:
    before = scrape(metered)
    for _ in range(3):
        assert metered.client.get("/healthz").status_code == 200
    assert metered.client.get("/no/such/path").status_code == 404
    after = scrape(metered)

    def moved(**labels: str) -> float:
        return value(after, "medvault_http_requests_total", **labels) - value(
            before, "medvault_http_requests_total", **labels
        )

    assert moved(route="/healthz", method="GET", status="200") == 3
    assert moved(route="<unmatched>", method="GET", status="404") == 1
    count = "medvault_http_request_duration_seconds_count"
    labels = {"route": "/healthz", "method": "GET"}
    assert value(after, count, **labels) - value(before, count, **labels) == 3
    assert "/no/such/path" not in after


def test_upload_and_download_bytes_are_counted(metered: ApiHarness) -> None:
    patient = metered.patient()
    case_id = open_case(metered, patient)
    data = png_bytes()
    before = scrape(metered)
    stored = metered.client.put(
        f"/cases/{case_id}/uploads/scan.png?kind=record", headers=patient.headers, content=data
    )
    assert stored.status_code == 201, stored.text
    content = metered.client.get(
        f"/documents/{stored.json()['id']}/content", headers=patient.headers
    )
    assert content.status_code == 200
    after = scrape(metered)

    uploaded = value(after, "medvault_upload_bytes_total") - value(
        before, "medvault_upload_bytes_total"
    )
    downloaded = value(after, "medvault_download_bytes_total", kind="document") - value(
        before, "medvault_download_bytes_total", kind="document"
    )
    assert uploaded == len(data)
    assert downloaded == len(content.content) > 0


def test_link_downloads_are_counted_by_outcome_and_no_token_shows(metered: ApiHarness) -> None:
    setup = forwardable(metered)
    response = forward(metered, setup)
    assert response.status_code == 201, response.text
    issued: dict[str, Any] = response.json()
    issued["token"] = issued["link_url"].rsplit("/", 1)[1]
    before = scrape(metered)

    ok = fetch(metered, issued, setup.document_ids[0])
    wrong = fetch(metered, issued, setup.document_ids[0], code="not-the-code")
    assert ok.status_code == 200
    assert wrong.status_code == 403
    after = scrape(metered)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    links = "medvault_link_downloads_total"
    assert moved(links, kind="document", outcome="ok") == 1
    assert moved(links, kind="document", outcome="refused") == 1
    assert moved("medvault_download_bytes_total", kind="link_document") == len(ok.content)
    route = "/l/{token}/documents/{document_id}"
    assert moved("medvault_http_requests_total", route=route, method="POST", status="200") == 1
    assert moved("medvault_http_requests_total", route=route, method="POST", status="403") == 1
    assert issued["token"] not in after
    assert issued["access_code"] not in after
    for document_id in setup.document_ids:
        assert document_id not in after


def test_the_audit_chain_length_and_last_verification(metered: ApiHarness) -> None:
    admin = metered.user(Role.ADMIN)
    text = scrape(metered)
    with metered.session() as session:
        head = session.exec(sa.select(sa.func.max(AuditEvent.seq))).one()[0]  # type: ignore[call-overload]
    assert value(text, "medvault_audit_chain_length") == head > 0
    assert "medvault_audit_last_verification_ok" not in text  # never verified

    verified = metered.client.post("/admin/audit/verify", headers=admin.headers)
    assert verified.status_code == 200, verified.text
    text = scrape(metered)
    assert value(text, "medvault_audit_last_verification_ok") == 1
    assert value(text, "medvault_audit_last_verification_timestamp_seconds") == (
        metered.clock().timestamp()
    )

    with metered.session() as session:  # someone edits an event behind the service's back
        session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 1).values(purpose="x"))  # type: ignore[arg-type]
        session.commit()
    metered.clock.advance(minutes=5)
    assert metered.client.post("/admin/audit/verify", headers=admin.headers).json()["ok"] is False
    text = scrape(metered)
    assert value(text, "medvault_audit_last_verification_ok") == 0
    assert value(text, "medvault_audit_last_verification_timestamp_seconds") == (
        metered.clock().timestamp()
    )


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every log record of this process as the JSON lines production writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()


def test_a_requests_log_lines_carry_its_request_id(api: ApiHarness, json_logs: io.StringIO) -> None:
    probe = APIRouter()

    @probe.get("/_probe")
    def log_something() -> dict[str, str]:
        logging.getLogger("medvault.probe").info("probe %s", "ran")
        structlog.get_logger("medvault.probe").warning("probe again", count=2)
        return {}

    api.client.app.include_router(probe)  # type: ignore[attr-defined]
    response = api.client.get("/_probe")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    probes = [line for line in lines if line.get("logger") == "medvault.probe"]
    assert [line["event"] for line in probes] == ["probe ran", "probe again"]
    for line in probes:
        assert line["request_id"] == request_id
        assert {"timestamp", "level", "logger", "event"} <= set(line)
    assert probes[0]["level"] == "info"
    assert probes[1]["level"] == "warning"
    assert probes[1]["count"] == 2

    api.client.get("/healthz")
    later = [json.loads(line) for line in json_logs.getvalue().splitlines()][len(lines) :]
    assert all(line.get("request_id") != request_id for line in later)


def test_no_name_or_address_of_a_request_reaches_the_logs(
    api: ApiHarness, json_logs: io.StringIO
) -> None:
    email, name = "lena.vogt-logs@example.org", "Lena Vogt-Protokoll"
    registered = api.client.post(
        "/auth/register",
        json={
            "name": name,
            "email": email,
            "password": "not-the-password-0123",
            "birth_date": "1964-08-12",
        },
    )
    assert registered.status_code == 202, registered.text
    api.client.post("/auth/token", data={"username": email, "password": "wrong-password"})
    patient = api.patient(name=name)
    api.client.get("/cases", headers=patient.headers)

    written = json_logs.getvalue()
    for personal in (email, name, "not-the-password-0123", "wrong-password"):
        assert personal not in written
    assert patient.access_token not in written
