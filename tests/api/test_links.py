"""Partner links over HTTP: the page (HTML or JSON), downloads with the code, 410 answers,
locking, mutated tokens, and tokens kept out of the access log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.test_cases import assert_problem
from tests.api.test_transfers import Forwardable, forward, forwardable
from tests.apiharness import ApiHarness


@pytest.fixture
def setup(api: ApiHarness) -> Forwardable:
    return forwardable(api)


@pytest.fixture
def issued(api: ApiHarness, setup: Forwardable) -> dict[str, Any]:
    response = forward(api, setup)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    body["token"] = body["link_url"].rsplit("/", 1)[1]
    return body


def fetch(api: ApiHarness, issued: dict[str, Any], document_id: str, **kw: Any) -> Any:
    code = kw.pop("code", issued["access_code"])
    return api.client.post(
        f"/l/{issued['token']}/documents/{document_id}", data={"code": code}, **kw
    )


def test_the_page_lists_the_documents_and_uses_no_download(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any]
) -> None:
    as_json = api.client.get(f"/l/{issued['token']}")
    as_html = api.client.get(f"/l/{issued['token']}", headers={"Accept": "text/html"})
    again = api.client.get(f"/l/{issued['token']}")

    assert as_json.status_code == 200
    body = as_json.json()
    assert [d["id"] for d in body["documents"]] == setup.document_ids
    assert [d["filename"] for d in body["documents"]] == ["document-1.pdf", "document-2.png"]
    assert body["partner_kind"] == "clinic"
    assert again.json()["downloads_left"] == body["downloads_left"] == 5
    assert as_html.status_code == 200
    assert as_html.headers["content-type"].startswith("text/html")
    for document_id in setup.document_ids:
        assert f'action="/l/{issued["token"]}/documents/{document_id}"' in as_html.text
    for response in (as_json, as_html):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["referrer-policy"] == "no-referrer"


def test_download_with_the_code_streams_the_same_bytes_the_patient_gets(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any]
) -> None:
    document_id = setup.document_ids[1]

    response = fetch(api, issued, document_id)

    assert response.status_code == 200, response.text
    own = api.client.get(f"/documents/{document_id}/content", headers=setup.patient.headers)
    assert response.content == own.content
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-length"] == str(len(own.content))
    assert response.headers["content-disposition"] == 'attachment; filename="document-2.png"'
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert api.client.get(f"/l/{issued['token']}").json()["downloads_left"] == 4


def test_expiry_second_by_second(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any]
) -> None:
    api.clock.advance(days=7, seconds=-1)
    assert api.client.get(f"/l/{issued['token']}").status_code == 200
    assert fetch(api, issued, setup.document_ids[0]).status_code == 200

    api.clock.advance(seconds=1)

    assert_problem(api.client.get(f"/l/{issued['token']}"), 410, "link-expired")
    assert_problem(fetch(api, issued, setup.document_ids[0]), 410, "link-expired")
    page = api.client.get(f"/l/{issued['token']}", headers={"Accept": "text/html"})
    assert page.status_code == 410
    assert page.headers["content-type"].startswith("text/html")
    assert "Link expired" in page.text


def test_the_download_limit_is_exact(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any]
) -> None:
    for _ in range(5):
        assert fetch(api, issued, setup.document_ids[0]).status_code == 200

    assert_problem(fetch(api, issued, setup.document_ids[0]), 410, "link-used-up")
    assert_problem(api.client.get(f"/l/{issued['token']}"), 410, "link-used-up")


def test_wrong_codes_lock_the_link(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any]
) -> None:
    wrong = "2222222222" if issued["access_code"] != "2222222222" else "3333333333"
    left = []
    for _ in range(5):
        response = fetch(api, issued, setup.document_ids[0], code=wrong)
        assert_problem(response, 403, "access-code-wrong")
        left.append(response.json()["attempts_left"])

    assert left == [4, 3, 2, 1, 0]
    assert_problem(fetch(api, issued, setup.document_ids[0]), 410, "link-locked")


def test_mutated_tokens_and_foreign_documents_are_not_found(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any]
) -> None:
    token = issued["token"]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")

    assert_problem(api.client.get(f"/l/{flipped}"), 404, "not-found")
    assert_problem(api.client.get(f"/l/{token[:-1]}"), 404, "not-found")
    other = forwardable(api)
    assert_problem(fetch(api, issued, other.document_ids[0]), 404, "not-found")
    assert api.client.get(f"/l/{token}").json()["downloads_left"] == 5


def test_tokens_and_codes_never_reach_the_access_log(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any]
) -> None:
    api.client.get(f"/l/{issued['token']}")
    fetch(api, issued, setup.document_ids[0])
    fetch(api, issued, setup.document_ids[0], code="WRONGCODE2")

    logs = Path(api.runtime.settings.access_log_dir)
    written = "".join(p.read_text() for p in logs.rglob("*") if p.is_file())
    assert "/l/{token}" in written
    assert issued["token"] not in written
    assert issued["access_code"] not in written
