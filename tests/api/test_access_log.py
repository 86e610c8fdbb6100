"""The access-log middleware: one line per request, route templates only, no query, no token."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.testclient import TestClient

from api.access_log import AccessLogMiddleware
from tests.apiharness import ApiHarness

TOKEN = "tok-" + "A1b2C3d4" * 4
SECRET_QUERY = "code=481516"


class MemorySink:
    def __init__(self) -> None:
        self.records: list[tuple[dict[str, Any], datetime]] = []

    def write(self, record: Mapping[str, Any], *, at: datetime) -> None:
        # Through JSON, as the file sink does: the record must be serialisable as is.
        self.records.append((json.loads(json.dumps(record)), at))


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def client(sink: MemorySink) -> Iterator[TestClient]:
    app = FastAPI()

    @app.get("/links/{token}")
    def link(token: str) -> PlainTextResponse:
        return PlainTextResponse("page of " + str(len(token)))

    @app.get("/stream")
    def stream() -> StreamingResponse:
        return StreamingResponse(iter([b"a" * 1000, b"b" * 24]))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("unexpected")

    app.add_middleware(AccessLogMiddleware, sink=sink)
    with TestClient(app, raise_server_exceptions=False, client=("203.0.113.77", 5000)) as c:
        yield c


def test_a_line_names_the_route_template_never_the_path_or_query(
    client: TestClient, sink: MemorySink
) -> None:
    response = client.get(f"/links/{TOKEN}?{SECRET_QUERY}")

    assert response.status_code == 200
    [(record, at)] = sink.records
    assert set(record) == {
        "time",
        "request_id",
        "method",
        "route",
        "status",
        "duration_ms",
        "bytes_sent",
        "client",
    }
    assert record["route"] == "/links/{token}"
    assert (record["method"], record["status"]) == ("GET", 200)
    assert record["bytes_sent"] == len(response.content)
    assert record["client"] == "203.0.0.0"
    assert record["duration_ms"] >= 0
    assert record["request_id"] == response.headers["x-request-id"]
    assert datetime.fromisoformat(record["time"]) == at.replace(
        microsecond=at.microsecond // 1000 * 1000
    )
    line = json.dumps(record)
    for leak in (TOKEN, "481516", "203.0.113.77", "?"):
        assert leak not in line


def test_streamed_bodies_are_counted_whole(client: TestClient, sink: MemorySink) -> None:
    client.get("/stream")
    [(record, _)] = sink.records
    assert (record["route"], record["bytes_sent"]) == ("/stream", 1024)


def test_unknown_paths_are_logged_without_their_path(client: TestClient, sink: MemorySink) -> None:
    client.get(f"/nothing/{TOKEN}")
    [(record, _)] = sink.records
    assert (record["route"], record["status"]) == ("<unmatched>", 404)
    assert TOKEN not in json.dumps(record)


def test_a_crashing_handler_is_logged_as_500(client: TestClient, sink: MemorySink) -> None:
    assert client.get("/boom").status_code == 500
    [(record, _)] = sink.records
    assert (record["route"], record["status"]) == ("/boom", 500)


def test_a_failing_sink_does_not_fail_the_request(client: TestClient, sink: MemorySink) -> None:
    def full_disk(record: Mapping[str, Any], *, at: datetime) -> None:
        raise OSError(28, "No space left on device")

    sink.write = full_disk  # type: ignore[method-assign]
    assert client.get(f"/links/{TOKEN}").status_code == 200


def test_the_application_logs_to_daily_files(api: ApiHarness) -> None:
    api.client.get(f"/links/{TOKEN}?{SECRET_QUERY}")
    api.client.get("/healthz")

    [log_file] = api.runtime.settings.access_log_dir.iterdir()
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [record["route"] for record in records][-1] == "/healthz"
    assert TOKEN not in log_file.read_text()
    assert "481516" not in log_file.read_text()
