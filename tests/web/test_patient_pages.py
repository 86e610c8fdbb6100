"""The patient portal: registration, treatment requests, uploads (script and no-script), downloads,
consents, the survey and disclosures, in English and German; nobody reaches another's data."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx2 as httpx
import pytest
from sqlmodel import select

from api.web.i18n import Translator
from tests.api.test_surveys import completed_case
from tests.api.test_transfers import Forwardable, forward, forwardable
from tests.apiharness import PASSWORD, ApiHarness, TestUser
from tests.factories import PARTNER_NAME, pdf_bytes, png_bytes
from tests.web.conftest import HTML, PageBrowser, Pages
from vault.accounts.models import Role, User
from vault.cases.models import Case
from vault.consents.models import Consent
from vault.consents.texts import FORWARDING_2026_11
from vault.documents.models import Document, DocumentKind
from vault.surveys.models import Survey
from vault.transfers.models import Transfer

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(200)
NEW_EMAIL = "neu.patientin@example.org"
Answer = dict[str, Any]
DE = Translator("de")
EN = Translator("en")


def file_case(browser: PageBrowser, *, consent: bool = True) -> str:
    fields = {"text_version": FORWARDING_2026_11.version}
    if consent:
        fields["consent"] = "yes"
    response = browser.post("/portal/cases/new", fields)
    assert response.status_code == 303, response.text
    match = re.fullmatch(
        r"/portal/cases/([0-9a-f-]{36})\?done=opened", response.headers["location"]
    )
    assert match, response.headers["location"]
    return match.group(1)


def upload(browser: PageBrowser, case_id: str, name: str, content: bytes, **kw: str) -> Answer:
    kind = kw.get("kind", "record")
    response = browser.upload(
        f"/portal/cases/{case_id}/files/{name}?kind={kind}",
        content,
        media_type=kw.get("media_type", "application/octet-stream"),
    )
    body: Answer = response.json()
    body["status"] = response.status_code
    return body


def documents_of(api: ApiHarness, case_id: str) -> list[Document]:
    with api.session() as session:
        query = select(Document).where(Document.case_id == uuid.UUID(case_id))
        return list(session.exec(query))


def all_documents(api: ApiHarness) -> list[Document]:
    with api.session() as session:
        return list(session.exec(select(Document)))


# --- every page, both languages ---


@pytest.mark.parametrize(("lang", "marker"), [("en", "Treatment request"), ("de", "Behandlungs")])
def test_every_page_renders_in_english_and_german(
    api: ApiHarness, pages: Pages, patient: TestUser, lang: str, marker: str
) -> None:
    browser = pages.signed_in(patient)
    case_id = file_case(browser)
    assert upload(browser, case_id, "befund.pdf", pdf_bytes())["status"] == 201
    done_id = completed_case(api, patient)
    setup = forwardable(api)
    assert forward(api, setup).status_code == 201
    forwarded = pages.signed_in(setup.patient)
    paths = [
        (browser, "/portal"),
        (browser, "/portal/cases/new"),
        (browser, f"/portal/cases/{case_id}"),
        (browser, f"/portal/cases/{case_id}?done=uploaded"),
        (browser, f"/portal/cases/{done_id}"),
        (browser, f"/portal/cases/{done_id}/survey"),
        (browser, f"/portal/cases/{case_id}/survey"),
        (browser, "/portal/disclosures"),
        (forwarded, "/portal/disclosures"),
        (pages.browser(), "/register"),
        (pages.browser(), "/confirm?done=registered"),
        (pages.browser(), "/accept-invitation"),
        (pages.browser(), "/signin"),
    ]
    for who, path in paths:
        separator = "&" if "?" in path else "?"
        response = who.get(f"{path}{separator}lang={lang}")
        assert response.status_code == 200, (path, response.text)
        assert f'<html lang="{lang}">' in response.text, path
        if path.startswith("/portal"):
            assert marker in response.text, path


def test_the_nav_links_the_portal_disclosures_and_rights(browser: PageBrowser) -> None:
    page = browser.get("/portal/disclosures").text
    assert '<a href="/portal/rights">Your rights</a>' in page
    assert '<a href="/portal/disclosures" aria-current="page">Disclosures</a>' in page
    assert '<a href="/portal">Treatment requests</a>' in page


def test_the_sign_in_page_links_registration_and_codes(pages: Pages) -> None:
    page = pages.browser().get("/signin").text
    for path in ("/register", "/confirm", "/accept-invitation"):
        assert f'href="{path}"' in page


def test_a_notice_shows_only_for_known_keys(browser: PageBrowser) -> None:
    case_id = file_case(browser)
    assert (
        EN("patient.done_withdrawn") in browser.get(f"/portal/cases/{case_id}?done=withdrawn").text
    )
    echoed = browser.get(f"/portal/cases/{case_id}?done=%3Cb%3Ehello").text
    assert "hello" not in echoed
    assert 'class="notice"' not in echoed


# --- registration, confirmation, invitation ---


def registration(**overrides: str) -> dict[str, str]:
    fields = {
        "email": NEW_EMAIL,
        "name": "Neu Patientin",
        "birth_date": "1980-02-29",
        "phone": "+49 30 9876543",
        "sex": "female",
        "country": "DE",
        "password": PASSWORD,
        "password_repeat": PASSWORD,
    }
    fields.update(overrides)
    return fields


def mailed_code(api: ApiHarness) -> str:
    return api.notifier.messages[-1].body.split("\n\n")[2].strip()


def test_registration_confirmation_and_sign_in(api: ApiHarness, pages: Pages) -> None:
    visitor = pages.browser()
    response = visitor.post("/register", registration())
    assert response.status_code == 303
    assert response.headers["location"] == "/confirm?done=registered"
    assert [message.to for message in api.notifier.messages] == [NEW_EMAIL]
    assert EN("patient.done_registered") in visitor.get(response.headers["location"]).text
    unconfirmed = visitor.post("/signin", {"login": NEW_EMAIL, "password": PASSWORD})
    assert unconfirmed.status_code == 403

    wrong = visitor.post("/confirm", {"code": "not-the-code"})
    assert wrong.status_code == 400
    assert 'role="alert"' in wrong.text
    assert "not-the-code" not in wrong.text
    confirmed = visitor.post("/confirm", {"code": mailed_code(api)})
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/confirm?done=confirmed"

    signed_in = visitor.post("/signin", {"login": NEW_EMAIL, "password": PASSWORD})
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/portal"
    assert visitor.get("/portal").status_code == 200


def test_registering_a_known_address_gives_the_same_answer(api: ApiHarness, pages: Pages) -> None:
    assert pages.browser().post("/register", registration()).status_code == 303
    again = pages.browser().post("/register", registration(name="Jemand Anderes"))
    assert again.status_code == 303
    assert again.headers["location"] == "/confirm?done=registered"
    with api.session() as session:
        assert len(session.exec(select(User).where(User.role == Role.PATIENT)).all()) == 1
    assert [message.to for message in api.notifier.messages] == [NEW_EMAIL, NEW_EMAIL]


@pytest.mark.parametrize(
    ("overrides", "status", "text"),
    [
        ({"email": "not-an-address"}, 422, "E-mail address"),
        ({"birth_date": "2999-01-01"}, 422, "Date of birth"),
        ({"country": "de"}, 422, "Country"),
        ({"password_repeat": "something else entirely"}, 422, "The two passwords differ"),
        ({"password": "short", "password_repeat": "short"}, 422, "password"),
    ],
)
def test_a_refused_registration_keeps_the_fields_but_not_the_password(
    api: ApiHarness, pages: Pages, overrides: dict[str, str], status: int, text: str
) -> None:
    response = pages.browser().post("/register", registration(**overrides))
    assert response.status_code == status
    assert 'role="alert"' in response.text
    assert text in response.text.split('role="alert">')[1].split("</p>")[0]
    assert 'value="Neu Patientin"' in response.text
    assert PASSWORD not in response.text
    assert api.notifier.messages == []
    with api.session() as session:
        assert session.exec(select(User)).all() == []


def test_an_invited_patient_sets_a_password_and_signs_in(api: ApiHarness, pages: Pages) -> None:
    coordinator = api.user(Role.COORDINATOR)
    invited = api.client.post(
        "/patients/invitations",
        json={"email": NEW_EMAIL, "name": "Neu Patientin", "birth_date": "1980-02-29"},
        headers=coordinator.headers,
    )
    assert invited.status_code == 201, invited.text
    visitor = pages.browser()
    mismatch = visitor.post(
        "/accept-invitation",
        {"code": mailed_code(api), "password": PASSWORD, "password_repeat": PASSWORD + "!"},
    )
    assert mismatch.status_code == 422
    weak = visitor.post(
        "/accept-invitation", {"code": mailed_code(api), "password": "x", "password_repeat": "x"}
    )
    assert weak.status_code == 422
    accepted = visitor.post(
        "/accept-invitation",
        {"code": mailed_code(api), "password": PASSWORD, "password_repeat": PASSWORD},
    )
    assert accepted.status_code == 303
    assert accepted.headers["location"] == "/accept-invitation?done=accepted"
    signed_in = visitor.post("/signin", {"login": NEW_EMAIL, "password": PASSWORD})
    assert signed_in.headers["location"] == "/portal"


# --- treatment requests and consent ---


def test_filing_a_request_opens_the_case_and_gives_the_consent_shown(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    form = browser.get("/portal/cases/new").text
    assert "Declaration of consent to the forwarding of health data" in form
    assert f'value="{FORWARDING_2026_11.version}"' in form

    case_id = file_case(browser)

    with api.session() as session:
        case = session.get(Case, uuid.UUID(case_id))
        assert case is not None
        assert case.patient_id == patient.patient_id
        (consent,) = session.exec(select(Consent).where(Consent.case_id == case.id)).all()
        assert consent.text_sha256 == FORWARDING_2026_11.sha256
        assert consent.withdrawn_at is None
    portal = browser.get("/portal").text
    assert f'href="/portal/cases/{case_id}"' in portal
    assert 'href="/portal/cases/new"' in portal


def test_consent_is_voluntary_and_can_be_given_later(api: ApiHarness, browser: PageBrowser) -> None:
    case_id = file_case(browser, consent=False)
    page = browser.get(f"/portal/cases/{case_id}").text
    assert f'action="/portal/cases/{case_id}/consents"' in page
    unticked = browser.post(
        f"/portal/cases/{case_id}/consents", {"text_version": FORWARDING_2026_11.version}
    )
    assert unticked.status_code == 422
    assert EN("patient.tick_to_consent") in unticked.text
    with api.session() as session:
        assert session.exec(select(Consent)).all() == []

    given = browser.post(
        f"/portal/cases/{case_id}/consents",
        {"text_version": FORWARDING_2026_11.version, "consent": "yes"},
    )

    assert given.headers["location"] == f"/portal/cases/{case_id}?done=consented"
    with api.session() as session:
        assert len(session.exec(select(Consent)).all()) == 1


def test_an_unknown_consent_version_is_refused_before_a_case_is_opened(
    api: ApiHarness, browser: PageBrowser
) -> None:
    response = browser.post("/portal/cases/new", {"text_version": "made-up", "consent": "yes"})
    assert response.status_code == 422
    with api.session() as session:
        assert session.exec(select(Case)).all() == []


def test_withdrawing_a_consent_revokes_unused_links(api: ApiHarness, pages: Pages) -> None:
    setup = forwardable(api)
    assert forward(api, setup).status_code == 201
    browser = pages.signed_in(setup.patient)
    page = browser.get(f"/portal/cases/{setup.case_id}").text
    action = f"/portal/cases/{setup.case_id}/consents/{setup.consent_id}/withdraw"
    assert f'action="{action}"' in page

    response = browser.post(action)

    assert response.headers["location"] == f"/portal/cases/{setup.case_id}?done=withdrawn"
    with api.session() as session:
        consent = session.get(Consent, uuid.UUID(setup.consent_id))
        assert consent is not None
        assert consent.withdrawn_at is not None
        (transfer,) = session.exec(select(Transfer)).all()
        assert transfer.revoked_at is not None
    assert "Revoked on" in browser.get("/portal/disclosures").text


# --- uploads and downloads ---


def test_two_files_sent_like_the_script_are_stored_and_listed(
    api: ApiHarness, browser: PageBrowser
) -> None:
    case_id = file_case(browser)
    page = browser.get(f"/portal/cases/{case_id}").text
    assert f'data-upload-url="/portal/cases/{case_id}/files/{{filename}}"' in page
    assert 'class="uploads" aria-live="polite"' in page

    first = upload(browser, case_id, "befund.pdf", pdf_bytes(), media_type="application/pdf")
    second = upload(browser, case_id, "scan.png", png_bytes(), kind="invoice")

    assert (first["status"], second["status"]) == (201, 201)
    assert first["message"] == "befund.pdf is stored."
    stored = documents_of(api, case_id)
    assert sorted((d.kind, d.media_type) for d in stored) == [
        (DocumentKind.INVOICE, "image/png"),
        (DocumentKind.RECORD, "application/pdf"),
    ]
    listed = browser.get(f"/portal/cases/{case_id}").text
    for document in stored:
        assert f'href="/portal/documents/{document.id}"' in listed
    assert "befund.pdf" in listed
    assert "scan.png" in listed


@pytest.mark.parametrize("lang", ["en", "de"])
def test_a_refused_file_says_why_and_stores_nothing(
    api: ApiHarness, browser: PageBrowser, lang: str
) -> None:
    case_id = file_case(browser)
    browser.get(f"/portal?lang={lang}")

    refused = upload(browser, case_id, "setup.exe", EXE)

    assert refused["status"] == 422
    if lang == "de":
        assert refused["message"] == DE("errors.invalid-document")
    else:
        assert refused["message"].startswith("file type not accepted")
    assert all_documents(api) == []


def test_an_upload_without_a_known_kind_or_its_token_is_refused(
    api: ApiHarness, browser: PageBrowser
) -> None:
    case_id = file_case(browser)
    assert upload(browser, case_id, "a.png", png_bytes(), kind="extract")["status"] == 422
    tokenless = browser.client.post(
        f"/portal/cases/{case_id}/files/a.png?kind=record",
        content=png_bytes(),
        headers={"Accept": "application/json", "Content-Type": "image/png"},
    )
    assert tokenless.status_code == 403
    assert all_documents(api) == []


def form_upload(
    browser: PageBrowser, case_id: str, name: str, content: bytes, *, kind: str = "record"
) -> httpx.Response:
    """The upload form as a browser without script sends it: multipart, ``kind`` before the
    file, the CSRF token in the form's action URL (the body is never parsed for it)."""
    return browser.client.post(
        f"/portal/cases/{case_id}/documents?csrf_token={browser.csrf()}",
        data={"kind": kind},
        files=[("files", (name, content, "application/octet-stream"))],
        headers=HTML,
        follow_redirects=False,
    )


def test_without_javascript_the_form_uploads_one_file_at_a_time(
    api: ApiHarness, browser: PageBrowser
) -> None:
    case_id = file_case(browser)
    for name, content in (("befund.pdf", pdf_bytes()), ("scan.png", png_bytes())):
        response = form_upload(browser, case_id, name, content, kind="invoice")
        assert response.status_code == 303, response.text
        assert response.headers["location"] == f"/portal/cases/{case_id}?done=uploaded"
    stored = documents_of(api, case_id)
    assert [d.kind for d in stored] == [DocumentKind.INVOICE, DocumentKind.INVOICE]
    page = browser.get(f"/portal/cases/{case_id}?done=uploaded").text
    assert EN("patient.done_uploaded") in page
    assert "befund.pdf" in page
    assert "scan.png" in page


def test_without_javascript_a_file_form_needs_its_token_in_the_action_url(
    api: ApiHarness, browser: PageBrowser
) -> None:
    case_id = file_case(browser)
    response = browser.client.post(
        f"/portal/cases/{case_id}/documents",
        data={"csrf_token": browser.csrf(), "kind": "record"},  # in the body: not looked at
        files=[("files", ("scan.png", png_bytes(), "image/png"))],
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert all_documents(api) == []


def test_without_javascript_a_refused_file_shows_its_message(
    api: ApiHarness, browser: PageBrowser
) -> None:
    case_id = file_case(browser)
    response = form_upload(browser, case_id, "setup.exe", EXE)
    assert response.status_code == 422
    alert = response.text.split('role="alert">')[1].split("</p>")[0]
    assert alert.startswith("The file was not stored:")
    assert all_documents(api) == []
    nothing = form_upload(browser, case_id, "", b"")
    assert nothing.status_code == 422
    assert all_documents(api) == []


def test_a_download_returns_the_stored_bytes_as_an_attachment(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    case_id = file_case(browser)
    assert upload(browser, case_id, "scan.png", png_bytes())["status"] == 201
    (document,) = documents_of(api, case_id)

    response = browser.get(f"/portal/documents/{document.id}")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"].startswith('attachment; filename="scan.png"')
    assert response.headers["cache-control"] == "no-store"
    through_api = api.client.get(f"/documents/{document.id}/content", headers=patient.headers)
    assert response.content == through_api.content
    assert len(response.content) == document.size


def test_another_patients_case_and_document_answer_404(
    api: ApiHarness, pages: Pages, browser: PageBrowser
) -> None:
    case_id = file_case(browser)
    assert upload(browser, case_id, "scan.png", png_bytes())["status"] == 201
    (document,) = documents_of(api, case_id)
    with api.session() as session:
        (consent,) = session.exec(select(Consent)).all()
    other = pages.signed_in(api.patient())
    unknown = str(uuid.uuid4())

    for path in (
        f"/portal/cases/{case_id}",
        f"/portal/cases/{case_id}/survey",
        f"/portal/documents/{document.id}",
        f"/portal/cases/{unknown}",
        f"/portal/documents/{unknown}",
    ):
        assert other.get(path).status_code == 404, path
    assert upload(other, case_id, "mine.png", png_bytes(seed=2))["status"] == 404
    assert form_upload(other, case_id, "mine.png", png_bytes(seed=3)).status_code == 404
    withdraw = other.post(f"/portal/cases/{case_id}/consents/{consent.id}/withdraw")
    assert withdraw.status_code == 404
    consent_again = other.post(
        f"/portal/cases/{case_id}/consents",
        {"text_version": FORWARDING_2026_11.version, "consent": "yes"},
    )
    assert consent_again.status_code == 404
    survey = other.post(f"/portal/cases/{case_id}/survey", {"score_treatment": "5"})
    assert survey.status_code == 404
    assert len(all_documents(api)) == 1
    with api.session() as session:
        (unchanged,) = session.exec(select(Consent)).all()
        assert unchanged.withdrawn_at is None
    assert case_id not in other.get("/portal").text


# --- survey ---


def test_the_survey_is_offered_once_the_case_is_completed_and_answered_once(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    open_id = file_case(browser)
    assert "/survey" not in browser.get(f"/portal/cases/{open_id}").text
    early = browser.post(f"/portal/cases/{open_id}/survey", {"score_treatment": "5"})
    assert early.status_code == 409
    case_id = completed_case(api, patient)
    page = browser.get(f"/portal/cases/{case_id}").text
    assert f'href="/portal/cases/{case_id}/survey"' in page
    form = browser.get(f"/portal/cases/{case_id}/survey").text
    assert 'name="score_information"' in form
    assert 'name="qa_consent"' in form

    answers = {"score_information": "4", "score_treatment": "5", "comment": "Sehr gut\r\n"}
    response = browser.post(f"/portal/cases/{case_id}/survey", {**answers, "qa_consent": "yes"})

    assert response.status_code == 303
    assert response.headers["location"] == f"/portal/cases/{case_id}?done=survey"
    with api.session() as session:
        (survey,) = session.exec(select(Survey)).all()
        assert survey.scores == {"information": 4, "treatment": 5}
        assert survey.qa_consent is True
        assert survey.free_text_sealed is not None
    again = browser.post(f"/portal/cases/{case_id}/survey", {"score_treatment": "1"})
    assert again.status_code == 409
    assert 'role="alert"' in again.text
    assert 'name="score_information"' not in browser.get(f"/portal/cases/{case_id}/survey").text
    assert (
        f'href="/portal/cases/{case_id}/survey"' not in browser.get(f"/portal/cases/{case_id}").text
    )
    with api.session() as session:
        assert len(session.exec(select(Survey)).all()) == 1


def test_a_survey_without_any_score_is_refused_and_keeps_the_comment(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    case_id = completed_case(api, patient)
    response = browser.post(f"/portal/cases/{case_id}/survey", {"comment": "Nur ein Kommentar"})
    assert response.status_code == 422
    assert "Nur ein Kommentar</textarea>" in response.text
    with api.session() as session:
        assert session.exec(select(Survey)).all() == []


# --- disclosures ---


def partner_download(api: ApiHarness, setup: Forwardable, issued: Answer) -> None:
    token = issued["link_url"].rsplit("/", 1)[1]
    response = api.client.post(
        f"/l/{token}/documents/{setup.document_ids[0]}", data={"code": issued["access_code"]}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("lang", ["en", "de"])
def test_disclosures_show_who_what_when_why_and_each_download(
    api: ApiHarness, pages: Pages, lang: str
) -> None:
    setup = forwardable(api)
    issued = forward(api, setup)
    assert issued.status_code == 201, issued.text
    partner_download(api, setup, issued.json())
    t = Translator(lang)

    page = pages.signed_in(setup.patient).get(f"/portal/disclosures?lang={lang}").text

    assert PARTNER_NAME in page
    assert t("patient.partner_kind.clinic") in page
    assert "befund.pdf" in page
    assert "scan.png" in page
    assert t("patient.purpose.treatment-check") in page
    assert t("patient.basis.art9-2-a") in page
    assert t("patient.not_revoked") in page
    downloads = page.split(t("patient.downloads_heading"))[1]
    assert "befund.pdf" in downloads
    assert "UTC" in downloads
    assert "scan.png" not in downloads  # only the document the partner fetched


def test_a_patient_sees_only_their_own_disclosures(api: ApiHarness, pages: Pages) -> None:
    setup = forwardable(api)
    assert forward(api, setup).status_code == 201
    page = pages.signed_in(api.patient()).get("/portal/disclosures").text
    assert PARTNER_NAME not in page
    assert EN("patient.no_disclosures") in page
