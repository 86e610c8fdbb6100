"""The documents API: streamed uploads (raw and multipart), limits, listing and downloads."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import anyio
import pytest
from sqlmodel import select

from tests.api.test_cases import assert_problem, open_case
from tests.apiharness import ApiHarness, TestUser, harness_settings
from tests.factories import png_bytes
from vault.accounts.models import Role
from vault.documents.models import Document

LIMIT_MIB = 1


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness's settings with a 1 MiB document limit."""
    import tests.apiharness as harness

    monkeypatch.setattr(
        harness,
        "harness_settings",
        lambda tmp_path, **o: harness_settings(tmp_path, max_document_mib=LIMIT_MIB, **o),
    )


def stored_documents(api: ApiHarness) -> list[Document]:
    with api.session() as session:
        return list(session.exec(select(Document)))


def assert_nothing_stored(api: ApiHarness) -> None:
    assert stored_documents(api) == []
    assert list(api.runtime.blob_store.keys("")) == []


def put_raw(api: ApiHarness, user: TestUser, case_id: str, data: Any, **kw: Any) -> Any:
    return api.client.put(
        f"/cases/{case_id}/uploads/scan.png?kind=record", headers=user.headers, content=data, **kw
    )


def form(kind: str, data: bytes, filename: str = "röntgen.png") -> dict[str, Any]:
    return {"data": {"kind": kind}, "files": {"file": (filename, data, "image/png")}}


def test_raw_upload_then_download_the_same_bytes(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    data = png_bytes(300, 200)

    stored = put_raw(api, patient, case_id, data)

    assert stored.status_code == 201, stored.text
    body = stored.json()
    assert set(body) == {"id", "kind", "media_type", "size", "sha256"}
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    download = api.client.get(f"/documents/{body['id']}/content", headers=patient.headers)
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-length"] == str(len(data))
    assert download.headers["cache-control"] == "no-store"
    assert download.headers["referrer-policy"] == "no-referrer"
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"scan.png\"; filename*=UTF-8''scan.png"
    )


def test_multipart_upload_lists_with_its_file_name(api: ApiHarness) -> None:
    patient = api.patient()
    coordinator = api.user(Role.COORDINATOR)
    case_id = open_case(api, patient)

    response = api.client.post(
        f"/cases/{case_id}/documents", headers=patient.headers, **form("invoice", png_bytes())
    )

    assert response.status_code == 201, response.text
    assert response.json()["kind"] == "invoice"
    for user in (patient, coordinator):
        listed = api.client.get(f"/cases/{case_id}/documents", headers=user.headers).json()
        assert [(d["id"], d["filename"]) for d in listed] == [
            (response.json()["id"], "röntgen.png")
        ]
    download = api.client.get(
        f"/documents/{response.json()['id']}/content", headers=coordinator.headers
    )
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"r_ntgen.png\"; filename*=UTF-8''r%C3%B6ntgen.png"
    )


def test_a_coordinator_uploads_to_any_case(api: ApiHarness) -> None:
    case_id = open_case(api, api.patient())

    response = put_raw(api, api.user(Role.COORDINATOR), case_id, png_bytes())

    assert response.status_code == 201


def test_another_patients_case_and_documents_are_not_found(api: ApiHarness) -> None:
    alice, bob = api.patient(), api.patient()
    case_id = open_case(api, alice)
    document_id = put_raw(api, alice, case_id, png_bytes()).json()["id"]

    upload = put_raw(api, bob, case_id, png_bytes(8, 8))
    listing = api.client.get(f"/cases/{case_id}/documents", headers=bob.headers)
    download = api.client.get(f"/documents/{document_id}/content", headers=bob.headers)
    unknown = api.client.get(f"/documents/{uuid.uuid4()}/content", headers=bob.headers)

    for response in (upload, listing, download):
        assert_problem(response, 404, "not-found")
    assert download.json()["detail"] == unknown.json()["detail"]
    assert [d.id for d in stored_documents(api)] == [uuid.UUID(document_id)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04 a zip archive", "type"),
        (b"%PDF-1.7\nthis is not a pdf at all", "PDF"),
    ],
)
def test_refused_files_answer_422_with_the_reason(
    api: ApiHarness, data: bytes, reason: str
) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)

    raw = put_raw(api, patient, case_id, data)
    multipart = api.client.post(
        f"/cases/{case_id}/documents", headers=patient.headers, **form("record", data)
    )

    for response in (raw, multipart):
        assert_problem(response, 422, "invalid-document")
        assert reason.lower() in response.json()["detail"].lower()
    assert_nothing_stored(api)


@pytest.mark.parametrize(
    "request_args",
    [
        {"data": {"kind": "extract"}, "files": {"file": ("a.png", b"x", "image/png")}},
        {"data": {"kind": "record"}},
        {"files": {"file": ("a.png", b"x", "image/png")}},
    ],
    ids=["kind-extract", "no-file", "no-kind"],
)
def test_malformed_forms_are_refused(api: ApiHarness, request_args: dict[str, Any]) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)

    response = api.client.post(
        f"/cases/{case_id}/documents", headers=patient.headers, **request_args
    )

    assert_problem(response, 422, "invalid-document")
    assert_nothing_stored(api)


def test_a_raw_upload_of_kind_extract_is_refused(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)

    response = api.client.put(
        f"/cases/{case_id}/uploads/a.png?kind=extract", headers=patient.headers, content=b"x"
    )

    assert_problem(response, 422, "invalid-document")
    assert_nothing_stored(api)


def test_analysts_upload_and_download_nothing(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    document_id = put_raw(api, patient, case_id, png_bytes()).json()["id"]
    analyst = api.user(Role.ANALYST)

    assert_problem(put_raw(api, analyst, case_id, png_bytes()), 403, "forbidden")
    assert_problem(
        api.client.get(f"/documents/{document_id}/content", headers=analyst.headers),
        403,
        "forbidden",
    )


# --- limits and interrupted bodies, driven at the ASGI level to see what the app reads ---


class Body:
    """An ASGI receive() that hands out ``chunks`` and counts how many were taken."""

    def __init__(self, chunks: list[bytes], *, then_disconnect: bool = False) -> None:
        self._chunks = iter(chunks)
        self._count = len(chunks)
        self._then_disconnect = then_disconnect
        self.taken = 0

    async def __call__(self) -> dict[str, Any]:
        chunk = next(self._chunks, None)
        if chunk is None:
            return {"type": "http.disconnect"}
        self.taken += 1
        more = self.taken < self._count or self._then_disconnect
        return {"type": "http.request", "body": chunk, "more_body": more}


def call_app(
    api: ApiHarness,
    path: str,
    user: TestUser,
    body: Body,
    headers: dict[str, str],
    *,
    method: str = "PUT",
) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    all_headers = {**user.headers, **headers}
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.split("?")[0],
        "raw_path": path.split("?")[0].encode(),
        "query_string": path.partition("?")[2].encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "client": ("192.0.2.10", 50000),
        "server": ("testserver", 80),
        "root_path": "",
    }
    anyio.run(api.client.app, scope, body, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    return int(start["status"]), b"".join(m.get("body", b"") for m in sent[1:])


def mib_chunks(count: int, size: int = 256 * 1024) -> list[bytes]:
    data = png_bytes(600, 600)
    first = data[: 64 * 1024]
    return [first] + [bytes(size)] * (count - 1)


def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    small_limit: None, api: ApiHarness
) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    body = Body(mib_chunks(8))

    status, answer = call_app(
        api,
        f"/cases/{case_id}/uploads/big.png?kind=record",
        patient,
        body,
        {"content-length": str(LIMIT_MIB * 1024 * 1024 + 1)},
    )

    assert status == 413
    assert b"document-too-large" in answer
    assert body.taken == 0
    assert_nothing_stored(api)


def test_a_chunked_body_over_the_limit_stops_as_it_passes_it(
    small_limit: None, api: ApiHarness
) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    body = Body(mib_chunks(64))  # 16 MiB offered, the limit is 1 MiB

    status, answer = call_app(
        api, f"/cases/{case_id}/uploads/big.png?kind=record", patient, body, {}
    )

    assert status == 413
    assert b"document-too-large" in answer
    assert body.taken <= 6  # the 1 MiB limit, plus at most one chunk
    assert_nothing_stored(api)


def test_a_client_that_disconnects_mid_upload_leaves_nothing(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    data = png_bytes(800, 800)
    body = Body([data[: len(data) // 2]], then_disconnect=True)

    status, _ = call_app(api, f"/cases/{case_id}/uploads/cut.png?kind=record", patient, body, {})

    assert status == 400
    assert_nothing_stored(api)


def test_a_multipart_body_cut_inside_the_file_leaves_nothing(api: ApiHarness) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    boundary = "b0undary"
    data = png_bytes(400, 400)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nrecord\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    body = Body([head + data[: len(data) // 2]])  # the body simply ends: no closing boundary

    status, answer = call_app(
        api,
        f"/cases/{case_id}/documents",
        patient,
        body,
        {"content-type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )

    assert status == 400
    assert b"upload-interrupted" in answer
    assert_nothing_stored(api)
