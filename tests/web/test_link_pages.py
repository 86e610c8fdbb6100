"""The partner's link page: what was sent, by whom and until when, in English and German; one
access-code field for single downloads and for all documents as one streamed ZIP (one use of
the link, each document recorded); wrong codes and gone links as for single downloads."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest
from sqlmodel import col, select

from tests.api.test_transfers import Forwardable, forward, forwardable
from tests.apiharness import ApiHarness
from tests.web.conftest import PageBrowser, Pages
from vault.audit.models import AuditEvent
from vault.links.models import LinkDownload

HTML = {"Accept": "text/html"}
GERMAN = {"Accept": "text/html", "Accept-Language": "de-DE,de;q=0.9"}
GERMAN_HELP = "bitten Sie die Person, die Ihnen den Link geschickt hat, um einen neuen"


@pytest.fixture
def setup(api: ApiHarness) -> Forwardable:
    return forwardable(api)


def issue(api: ApiHarness, setup: Forwardable, **overrides: Any) -> dict[str, Any]:
    response = forward(api, setup, **overrides)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    body["path"] = "/l/" + body["link_url"].rsplit("/", 1)[1]
    return body


@pytest.fixture
def issued(api: ApiHarness, setup: Forwardable) -> dict[str, Any]:
    return issue(api, setup)


@pytest.fixture
def partner(pages: Pages) -> PageBrowser:
    return pages.browser()


def own_copy(api: ApiHarness, setup: Forwardable, document_id: str) -> bytes:
    response = api.client.get(f"/documents/{document_id}/content", headers=setup.patient.headers)
    assert response.status_code == 200
    return response.content


def downloads_left(api: ApiHarness, issued: dict[str, Any]) -> int:
    left: int = api.client.get(issued["path"]).json()["downloads_left"]
    return left


def archive(partner: PageBrowser, issued: dict[str, Any], code: str | None = None) -> Any:
    data = {"code": issued["access_code"] if code is None else code}
    return partner.client.post(f"{issued['path']}/archive", data=data, headers=HTML)


def wrong_code(issued: dict[str, Any]) -> str:
    return "2222222222" if issued["access_code"] != "2222222222" else "3333333333"


def test_the_page_says_what_was_sent_by_whom_and_until_when(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any], partner: PageBrowser
) -> None:
    english = partner.client.get(issued["path"], headers=HTML)
    german = partner.client.get(issued["path"], headers=GERMAN)

    assert english.status_code == german.status_code == 200
    organisation = api.runtime.settings.organisation_name
    assert f"{organisation} has shared 2 document(s) with you" in english.text
    assert "Sent on" in english.text
    assert "Nov 24, 2026" in english.text
    assert "Available until" in english.text
    assert "Dec 1, 2026" in english.text
    assert "Downloads left" in english.text
    assert english.text.count('name="code"') == 1  # one access-code field for every button
    assert f'action="{issued["path"]}/archive"' in english.text
    for document_id in setup.document_ids:
        assert f'formaction="{issued["path"]}/documents/{document_id}"' in english.text
    assert "Download document-1.pdf" in english.text
    assert "Medical record" in english.text
    assert "Für Sie freigegebene Dokumente" in german.text
    assert "Verfügbar bis" in german.text
    assert "01.12.2026" in german.text
    assert "document-2.png herunterladen" in german.text
    assert english.headers["cache-control"] == "no-store"
    assert downloads_left(api, issued) == 5  # opening uses nothing
    assert api.client.get(issued["path"]).json().keys() == {
        "transfer_id",
        "partner_kind",
        "documents",
        "expires_at",
        "downloads_left",
    }


def test_the_language_can_be_switched_and_stays_for_the_gone_pages(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any], partner: PageBrowser
) -> None:
    switched = partner.client.get(f"{issued['path']}?lang=de", headers=HTML)
    assert switched.status_code == 200
    assert "Für Sie freigegebene Dokumente" in switched.text
    api.clock.advance(days=8)

    gone = partner.client.get(issued["path"], headers=HTML)

    assert gone.status_code == 410
    assert "Dieser Link ist abgelaufen" in gone.text


def test_all_documents_as_one_zip_with_the_same_bytes_count_as_one_download(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any], partner: PageBrowser
) -> None:
    response = archive(partner, issued)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="documents.zip"'
    assert response.headers["cache-control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zipped:
        assert zipped.testzip() is None
        assert zipped.namelist() == ["document-1.pdf", "document-2.png"]
        for name, document_id in zip(zipped.namelist(), setup.document_ids, strict=True):
            assert zipped.read(name) == own_copy(api, setup, document_id)
    assert downloads_left(api, issued) == 4  # one use of the link, not one per document
    with api.session() as session:
        recorded = session.exec(select(LinkDownload.document_id)).all()
        events = session.exec(
            select(AuditEvent.document_id).where(AuditEvent.action == "link.download")
        ).all()
    assert sorted(map(str, recorded)) == sorted(setup.document_ids)
    assert sorted(map(str, events)) == sorted(setup.document_ids)
    disclosures = api.client.get("/me/disclosures", headers=setup.patient.headers).json()
    assert len(disclosures[0]["downloads"]) == 2  # the patient sees both documents went


def test_a_link_of_one_download_gives_everything_in_one_zip_then_is_used_up(
    api: ApiHarness, setup: Forwardable, partner: PageBrowser
) -> None:
    issued = issue(api, setup, max_downloads=1)

    assert archive(partner, issued).status_code == 200
    again = archive(partner, issued)
    single = partner.client.post(
        f"{issued['path']}/documents/{setup.document_ids[0]}",
        data={"code": issued["access_code"]},
        headers=HTML,
    )

    assert again.status_code == single.status_code == 410
    assert "This link is used up" in again.text


def test_a_wrong_code_shows_the_page_again_and_counts_like_a_single_download(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any], partner: PageBrowser
) -> None:
    wrong = wrong_code(issued)

    on_page = archive(partner, issued, wrong)
    as_api = api.client.post(f"{issued['path']}/archive", data={"code": wrong})
    single = partner.client.post(
        f"{issued['path']}/documents/{setup.document_ids[0]}", data={"code": wrong}, headers=GERMAN
    )

    assert on_page.status_code == 403
    assert "Wrong access code. After 4 more wrong code(s) the link locks." in on_page.text
    assert 'aria-invalid="true"' in on_page.text
    assert as_api.status_code == 403
    assert as_api.json()["attempts_left"] == 3
    assert single.status_code == 403
    assert "Falscher Zugangscode. Nach 2 weiteren falschen Code(s)" in single.text
    for _ in range(2):
        assert archive(partner, issued, wrong).status_code in (403, 410)
    locked = archive(partner, issued)  # the right code no longer helps
    assert locked.status_code == 410
    assert "This link is locked" in locked.text
    with api.session() as session:
        assert session.exec(select(LinkDownload)).all() == []


def gone(api: ApiHarness, setup: Forwardable, issued: dict[str, Any], state: str) -> None:
    """Bring the link into a gone state the way it happens."""
    if state == "expired":
        api.clock.advance(days=7)
    elif state == "revoked":
        transfer_id = issued["transfer"]["id"]
        revoked = api.client.post(
            f"/transfers/{transfer_id}/revoke", headers=setup.coordinator.headers
        )
        assert revoked.status_code == 200
    elif state == "used-up":
        for _ in range(5):
            assert (
                api.client.post(
                    f"{issued['path']}/archive", data={"code": issued["access_code"]}
                ).status_code
                == 200
            )
    else:
        for _ in range(5):
            api.client.post(f"{issued['path']}/archive", data={"code": wrong_code(issued)})


@pytest.mark.parametrize(
    ("state", "english", "german"),
    [
        ("expired", "This link has expired", "Dieser Link ist abgelaufen"),
        ("revoked", "This link was withdrawn", "Dieser Link wurde zurückgezogen"),
        ("used-up", "This link is used up", "Dieser Link ist aufgebraucht"),
        ("locked", "This link is locked", "Dieser Link ist gesperrt"),
    ],
)
def test_each_gone_state_has_its_page_in_both_languages_for_page_zip_and_single_download(
    api: ApiHarness,
    setup: Forwardable,
    issued: dict[str, Any],
    partner: PageBrowser,
    state: str,
    english: str,
    german: str,
) -> None:
    gone(api, setup, issued, state)
    single = f"{issued['path']}/documents/{setup.document_ids[0]}"
    code = {"code": issued["access_code"]}

    answers = [
        partner.client.get(issued["path"], headers=HTML),
        partner.client.post(f"{issued['path']}/archive", data=code, headers=HTML),
        partner.client.post(single, data=code, headers=HTML),
    ]
    in_german = partner.client.get(issued["path"], headers=GERMAN)
    as_api = api.client.post(f"{issued['path']}/archive", data=code)

    for answer in [*answers, in_german]:
        assert answer.status_code == 410
        assert answer.headers["content-type"].startswith("text/html")
    for answer in answers:
        assert english in answer.text
        assert "ask the person who sent you the link for a new one" in answer.text
    assert german in in_german.text
    assert GERMAN_HELP in in_german.text
    assert as_api.status_code == 410
    assert as_api.json()["type"].endswith(f"/link-{state}")


def test_the_archive_is_refused_while_processing_is_restricted(
    api: ApiHarness, setup: Forwardable, issued: dict[str, Any], partner: PageBrowser
) -> None:
    placed = api.client.post(
        "/admin/restrictions",
        headers=setup.admin.headers,
        json={"patient_id": str(setup.patient.patient_id)},
    )
    assert placed.status_code == 201

    response = api.client.post(f"{issued['path']}/archive", data={"code": issued["access_code"]})

    assert response.status_code == 409
    assert response.json()["type"].endswith("/processing-restricted")
    with api.session() as session:
        assert session.exec(select(LinkDownload)).all() == []
        refused = session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "link.refused")
        ).all()
    assert len(refused) == 1
