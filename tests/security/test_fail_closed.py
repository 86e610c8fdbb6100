"""Fail closed: when the audit chain cannot be written, the action it would record does not
happen. The database itself refuses the insert (a trigger), so this is the real failure path,
not a patched function."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlmodel import func, select

from tests.api.test_transfers import Forwardable, forward, forwardable, upload
from tests.apiharness import ApiHarness
from tests.factories import png_bytes
from vault.documents.models import Document
from vault.links.models import Link, LinkDownload
from vault.transfers.models import Transfer

AUDIT_DOWN = "https://medvault.invalid/problems/audit-unavailable"


@contextmanager
def audit_writes_fail(api: ApiHarness) -> Iterator[None]:
    with api.runtime.engine.begin() as connection:
        connection.execute(
            sa.text(
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit storage down'); END"
            )
        )
    try:
        yield
    finally:
        with api.runtime.engine.begin() as connection:
            connection.execute(sa.text("DROP TRIGGER audit_down"))


def count(api: ApiHarness, model: Any) -> int:
    with api.session() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def assert_audit_down(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["type"] == AUDIT_DOWN
    assert "audit storage down" not in response.text  # the database's words stay inside


def test_no_transfer_without_its_event(api: ApiHarness) -> None:
    setup = forwardable(api)
    with audit_writes_fail(api):
        response = forward(api, setup)
    assert_audit_down(response)
    assert (count(api, Transfer), count(api, Link)) == (0, 0)
    assert api.notifier.messages == []  # no link went out for a transfer that does not exist


def test_no_upload_without_its_event(api: ApiHarness) -> None:
    setup = forwardable(api)
    before = count(api, Document)
    with audit_writes_fail(api):
        response = api.client.put(
            f"/cases/{setup.case_id}/uploads/scan.png?kind=record",
            headers=setup.patient.headers,
            content=png_bytes(seed=9),
        )
    assert_audit_down(response)
    assert count(api, Document) == before
    objects = list(api.runtime.blob_store.keys(f"cases/{setup.case_id}/"))
    assert len(objects) == before  # the uploaded object was removed with the refused row


def test_no_download_without_its_event(api: ApiHarness) -> None:
    setup = forwardable(api)
    [document_id, _] = setup.document_ids
    with audit_writes_fail(api):
        response = api.client.get(
            f"/documents/{document_id}/content", headers=setup.patient.headers
        )
    assert_audit_down(response)
    assert png_bytes() not in response.content


def test_no_partner_download_without_its_event(api: ApiHarness) -> None:
    setup: Forwardable = forwardable(api)
    issued = forward(api, setup).json()
    token = issued["link_url"].rsplit("/", 1)[1]
    document_id = setup.document_ids[0]
    with audit_writes_fail(api):
        response = api.client.post(
            f"/l/{token}/documents/{document_id}", data={"code": issued["access_code"]}
        )
    assert_audit_down(response)
    assert count(api, LinkDownload) == 0
    page = api.client.get(f"/l/{token}").json()
    assert page["downloads_left"] == 5  # a refused download does not use one up


def test_uploads_and_downloads_work_again_once_the_audit_is_back(api: ApiHarness) -> None:
    setup = forwardable(api)
    with audit_writes_fail(api):
        assert_audit_down(forward(api, setup))
    assert forward(api, setup).status_code == 201
    assert upload(api, setup.patient, setup.case_id, png_bytes(seed=3), "x.png")
