"""The patient's rights pages: exports (pending, ready, download), rectification, restriction,
withdrawal, objections, erasure and the register of requests, in English and German; nobody
reaches another patient's export."""

from __future__ import annotations

import re
import uuid
from html import unescape
from typing import Any

import pytest
from sqlmodel import col, func, select

from api.web import rights as rights_pages
from api.web.session import SESSION_COOKIE
from infra.tasks import EXPORTS_BUILD
from tests.api.test_cases import open_case
from tests.api.test_restriction import download, issued_link
from tests.api.test_retention import complete
from tests.api.test_subject_exports import run_build
from tests.api.test_surveys import answers, completed_case
from tests.api.test_transfers import forwardable
from tests.apiharness import ApiHarness, TestUser
from tests.factories import PARTNER_NAME, PATIENT_NAME
from tests.web.conftest import PageBrowser, Pages
from vault.accounts.models import Role, User
from vault.consents.models import Restriction
from vault.errors import ErasureConflict, StorageUnavailable
from vault.subject_rights import erasure as erasure_service
from vault.subject_rights.models import (
    ExportStatus,
    RequestStatus,
    Right,
    RightsRequest,
    SubjectExport,
)
from vault.surveys.models import QaObjection, Survey
from vault.transfers.models import Transfer

INTERESTS = {"legal_basis": "art6-1-f", "consent_id": None}


def text(response: Any) -> str:
    """The page's text, markup and entities undone (for asserting what a reader sees)."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.text)))


def requests_of(api: ApiHarness, patient: TestUser) -> list[tuple[Right, RequestStatus]]:
    with api.session() as session:
        rows = session.exec(
            select(RightsRequest)
            .where(RightsRequest.patient_id == patient.patient_id)
            .order_by(col(RightsRequest.received_at))
        ).all()
        return [(row.right, row.status) for row in rows]


def count(api: ApiHarness, table: type) -> int:
    with api.session() as session:
        return session.exec(select(func.count()).select_from(table)).one()


def profile(api: ApiHarness, patient: TestUser) -> dict[str, Any]:
    response = api.client.get("/me/profile", headers=patient.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def request_export(browser: PageBrowser, kind: str = "access") -> str:
    response = browser.post("/portal/rights/exports", {"kind": kind})
    assert response.status_code == 303, response.text
    match = re.fullmatch(
        r"/portal/rights/exports/([0-9a-f-]{36})\?done=requested", response.headers["location"]
    )
    assert match, response.headers["location"]
    return match.group(1)


def profile_form(values: dict[str, Any], **changes: str) -> dict[str, str]:
    """The profile form as a browser sends it: every field, as shown, with ``changes``."""
    shown = {key: "" if value is None else str(value) for key, value in values.items()}
    return {**shown, **changes}


# --- every page, both languages ---


@pytest.mark.parametrize(
    ("language", "heading"),
    [("en", "Your rights over your data"), ("de", "Ihre Rechte an Ihren Daten")],
)
def test_every_page_renders_in_both_languages(
    api: ApiHarness, pages: Pages, language: str, heading: str
) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)
    browser = pages.signed_in(patient)
    first = browser.get(f"/portal/rights?lang={language}")
    assert first.status_code == 200, first.text
    assert f"<h1>{heading}</h1>" in first.text
    assert f'<html lang="{language}">' in first.text
    export_id = request_export(browser)
    pending = browser.get(f"/portal/rights/exports/{export_id}?done=requested")
    assert pending.status_code == 200
    run_build(api, export_id)
    pages_to_see = [
        "/portal/rights",
        f"/portal/rights/exports/{export_id}",
        "/portal/rights/profile?done=rectified",
        "/portal/rights/erasure",
        "/erased?done=partial",
        "/erased",
    ]
    for path in pages_to_see:
        response = browser.get(path)
        assert response.status_code == 200, (path, response.text)
        assert f'<html lang="{language}">' in response.text
    outcomes = [
        ("/portal/rights/restriction", {"case_id": case_id}),
        ("/portal/rights/qa-consent/withdraw", {}),
        ("/portal/rights/objections/qa", {}),
        ("/portal/rights/objections/legitimate-interests", {}),
    ]
    for path, data in outcomes:
        response = browser.post(path, data)
        assert response.status_code == 200, (path, response.text)
        assert f'<html lang="{language}">' in response.text
    overview = browser.get("/portal/rights").text
    assert ("Ihre Anträge" in overview) is (language == "de")
    assert ("Your requests" in overview) is (language == "en")


def test_the_overview_lists_each_right_and_the_requests_made(
    api: ApiHarness, pages: Pages, browser: PageBrowser, patient: TestUser
) -> None:
    empty = browser.get("/portal/rights")
    assert "You have not made any requests yet." in text(empty)
    for action in ("/portal/rights/objections/qa", "/portal/rights/restriction"):
        assert browser.post(action).status_code == 200
        api.clock.advance(seconds=1)
    request_export(browser)

    page = text(browser.get("/portal/rights"))

    for article in ("Art. 15 and 20", "Art. 16", "Art. 17", "Art. 18", "Art. 7(3)", "Art. 21"):
        assert article in page
    assert "You have not made any requests yet." not in page
    # Latest first: the open export request, then the two completed ones, each with its dates.
    rows = re.findall(r"<tr>\s*<td>([^<]+)</td>", browser.get("/portal/rights").text)
    assert [unescape(row) for row in rows[-3:]] == [
        "Copy of your data (access)",
        "Restriction",
        "Objection",
    ]
    assert page.count("Completed") == 2
    assert "In progress" in page
    assert "All your data is restricted since" in page
    assert "Overdue" not in page
    assert requests_of(api, patient)[-1] == (Right.ACCESS, RequestStatus.OPEN)
    # A month later the export's request is still open: overdue.
    api.clock.advance(days=32)
    later = text(pages.signed_in(patient).get("/portal/rights"))
    assert later.count("Overdue") == 1


# --- exports ---


def test_an_export_is_requested_built_and_downloaded(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    export_id = request_export(browser, "portability")

    assert api.tasks.sent == [(EXPORTS_BUILD, (export_id,))]
    assert requests_of(api, patient) == [(Right.PORTABILITY, RequestStatus.OPEN)]
    pending = browser.get(f"/portal/rights/exports/{export_id}?done=requested")
    assert pending.status_code == 200
    assert f'data-poll-url="/portal/rights/exports/{export_id}/status"' in pending.text
    assert "Your request was received" in text(pending)
    assert "Download the archive" not in pending.text
    status = browser.get(f"/portal/rights/exports/{export_id}/status")
    assert status.json() == {"label": "Being put together", "done": False}
    # Not ready yet: no link, the page says why.
    early = browser.post(f"/portal/rights/exports/{export_id}/download")
    assert early.status_code == 409
    assert 'class="error" role="alert"' in early.text

    assert run_build(api, export_id) is ExportStatus.READY

    assert browser.get(f"/portal/rights/exports/{export_id}/status").json() == {
        "label": "Ready to download",
        "done": True,
    }
    ready = browser.get(f"/portal/rights/exports/{export_id}")
    assert "data-poll-url" not in ready.text
    shown = text(ready)
    assert re.search(r"Download the archive \([\d.,]+ kB\)", shown), shown
    assert "works for 15 minutes only" in shown
    assert "fhir-bundle.json" in shown
    assert requests_of(api, patient) == [(Right.PORTABILITY, RequestStatus.COMPLETED)]

    link = browser.post(f"/portal/rights/exports/{export_id}/download")

    assert link.status_code == 303
    location = link.headers["location"]
    assert location.startswith(f"/exports/{export_id}/download?expires=")
    assert "&signature=" in location
    archive = browser.client.get(location)
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    assert archive.headers["content-disposition"].startswith("attachment;")
    assert archive.content.startswith(b"PK")


def test_one_export_at_a_time_and_a_bad_kind_is_refused(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    request_export(browser)

    again = browser.post("/portal/rights/exports", {"kind": "portability"})

    assert again.status_code == 409
    assert "still being built" in text(again)
    assert browser.post("/portal/rights/exports", {"kind": "everything"}).status_code == 422
    assert count(api, SubjectExport) == 1
    assert len(api.tasks.sent) == 1
    german = browser.post("/portal/rights/exports?lang=de", {"kind": "access"})
    assert german.status_code == 409
    assert "An export is already being built." not in german.text


def test_another_patients_export_is_not_found(
    api: ApiHarness, pages: Pages, browser: PageBrowser
) -> None:
    export_id = request_export(browser)
    run_build(api, export_id)
    other = pages.signed_in(api.patient())

    for response in (
        other.get(f"/portal/rights/exports/{export_id}"),
        other.get(f"/portal/rights/exports/{export_id}/status"),
        other.post(f"/portal/rights/exports/{export_id}/download"),
        other.get(f"/portal/rights/exports/{uuid.uuid4()}"),
    ):
        assert response.status_code == 404
        assert "/exports/" not in response.headers.get("location", "")
        assert "signature=" not in response.text


# --- rectification ---


def test_the_profile_shows_the_details_held_and_corrects_what_changed(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    page = browser.get("/portal/rights/profile")
    assert page.status_code == 200
    assert f'value="{PATIENT_NAME}"' in page.text
    assert 'value="+49 30 1234567"' in page.text
    held = profile(api, patient)

    response = browser.post(
        "/portal/rights/profile",
        profile_form(held, name="Erika Berichtigt", phone="", country="AT"),
    )

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/portal/rights/profile?done=rectified"
    now = profile(api, patient)
    assert (now["name"], now["phone"], now["country"]) == ("Erika Berichtigt", None, "AT")
    assert (now["email"], now["birth_date"]) == (held["email"], held["birth_date"])
    assert requests_of(api, patient) == [(Right.RECTIFICATION, RequestStatus.COMPLETED)]
    shown = browser.get(response.headers["location"])
    assert "Your details were corrected." in text(shown)
    assert 'value="Erika Berichtigt"' in shown.text


def test_sending_the_profile_unchanged_changes_nothing(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    response = browser.post("/portal/rights/profile", profile_form(profile(api, patient)))

    assert response.headers["location"] == "/portal/rights/profile?done=unchanged"
    assert requests_of(api, patient) == []


def test_a_new_address_becomes_the_login(
    api: ApiHarness, pages: Pages, browser: PageBrowser, patient: TestUser
) -> None:
    new = "erika.neu@example.org"
    response = browser.post(
        "/portal/rights/profile", profile_form(profile(api, patient), email=new)
    )

    assert response.headers["location"] == "/portal/rights/profile?done=rectified_login"
    assert api.sign_in(new, patient.password)


def test_bad_corrections_are_refused_keeping_what_was_typed(
    api: ApiHarness, pages: Pages, browser: PageBrowser, patient: TestUser
) -> None:
    held = profile(api, patient)
    future = browser.post(
        "/portal/rights/profile", profile_form(held, name="Neuer Name", birth_date="2999-01-01")
    )
    assert future.status_code == 422
    assert "Please check these fields: Date of birth." in text(future)
    assert 'value="Neuer Name"' in future.text

    taken = api.patient()
    clash = browser.post("/portal/rights/profile", profile_form(held, email=taken.login))
    assert clash.status_code == 409
    assert 'role="alert"' in clash.text
    assert profile(api, patient) == held
    assert requests_of(api, patient) == []


# --- restriction, withdrawal, objection ---


def test_a_restriction_of_all_data_then_again(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    response = browser.post("/portal/rights/restriction")

    assert response.status_code == 200
    assert "The processing of your data is now restricted." in text(response)
    with api.session() as session:
        [restriction] = session.exec(select(Restriction)).all()
        assert (restriction.patient_id, restriction.case_id) == (patient.patient_id, None)
    again = browser.post("/portal/rights/restriction")
    assert "already covers this" in text(again)
    assert count(api, Restriction) == 1
    assert requests_of(api, patient) == [(Right.RESTRICTION, RequestStatus.COMPLETED)] * 2


def test_a_restriction_of_one_case_and_never_of_anothers(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    own = open_case(api, patient)
    theirs = open_case(api, api.patient())
    form = browser.get("/portal/rights")
    assert f'<option value="{own}">' in form.text
    assert theirs not in form.text

    refused = browser.post("/portal/rights/restriction", {"case_id": theirs})
    assert refused.status_code == 404
    assert 'role="alert"' in refused.text
    assert count(api, Restriction) == 0
    assert requests_of(api, patient) == []

    placed = browser.post("/portal/rights/restriction", {"case_id": own})
    assert placed.status_code == 200
    assert "Treatment request of" in text(placed)
    with api.session() as session:
        [restriction] = session.exec(select(Restriction)).all()
        assert restriction.case_id == uuid.UUID(own)


def test_withdrawing_qa_consent_and_objecting_to_qa(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    case_id = completed_case(api, patient)
    answered = api.client.post(f"/cases/{case_id}/survey", json=answers(), headers=patient.headers)
    assert answered.status_code == 201, answered.text

    withdrawn = browser.post("/portal/rights/qa-consent/withdraw")

    assert withdrawn.status_code == 200
    assert "1 of your survey answers are no longer used" in text(withdrawn)
    with api.session() as session:
        [survey] = session.exec(select(Survey)).all()
        assert survey.qa_consent_withdrawn_at is not None
    nothing = browser.post("/portal/rights/qa-consent/withdraw")
    assert "nothing had to be withdrawn" in text(nothing)

    objected = browser.post("/portal/rights/objections/qa")
    assert "Your objection was recorded." in text(objected)
    with api.session() as session:
        assert session.get(QaObjection, patient.patient_id) is not None
    assert "You already objected on" in text(browser.post("/portal/rights/objections/qa"))
    assert [right for right, _ in requests_of(api, patient)] == [
        Right.CONSENT_WITHDRAWAL,
        Right.CONSENT_WITHDRAWAL,
        Right.OBJECTION,
        Right.OBJECTION,
    ]


def test_an_objection_to_legitimate_interests_says_what_was_revoked_and_kept(
    api: ApiHarness, pages: Pages
) -> None:
    setup = forwardable(api)
    unused = issued_link(api, setup, **INTERESTS)
    used = issued_link(api, setup, **INTERESTS)
    assert download(api, used, setup.document_ids[0]).status_code == 200
    browser = pages.signed_in(setup.patient)

    response = browser.post("/portal/rights/objections/legitimate-interests")

    assert response.status_code == 200
    shown = text(response)
    stopped, kept = shown.split("Forwardings stopped")[1].split("Forwardings that stay, and why")
    assert PARTNER_NAME in stopped
    assert "the recipient has already downloaded the documents" in kept
    with api.session() as session:
        revoked = {
            str(transfer.id): transfer.revoked_at is not None
            for transfer in session.exec(select(Transfer))
        }
    assert revoked == {unused["transfer"]["id"]: True, used["transfer"]["id"]: False}
    again = browser.post("/portal/rights/objections/legitimate-interests")
    assert "You already objected on" in text(again)


# --- erasure ---


def test_the_erasure_page_says_what_is_erased_and_what_is_kept(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    open_case(api, patient)
    completed = open_case(api, patient)
    complete(api, api.user(Role.COORDINATOR), completed)

    page = browser.get("/portal/rights/erasure")

    assert page.status_code == 200
    shown = text(page)
    erased_now = shown.split("Erased at once")[1].split("In addition")[0]
    assert erased_now.count("Treatment request of") == 1
    assert "Treatment and billing records we must keep by law" in shown
    assert "2031" in shown  # kept until the end of its retention period
    assert 'type="checkbox" id="confirm" name="confirm" value="yes" required' in page.text
    assert "data-confirm=" in page.text
    assert requests_of(api, patient) == []  # looking changes nothing


def test_an_unconfirmed_erasure_erases_nothing(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    case_id = open_case(api, patient)

    response = browser.post("/portal/rights/erasure", {"confirm": "no"})

    assert response.status_code == 422
    assert "Tick the box to confirm the erasure" in text(response)
    assert requests_of(api, patient) == []
    assert browser.get(f"/portal/cases/{case_id}").status_code == 200


def test_erasure_closes_the_account_and_signs_out(
    api: ApiHarness, pages: Pages, browser: PageBrowser, patient: TestUser
) -> None:
    open_case(api, patient)
    export_id = request_export(browser)
    run_build(api, export_id)
    session_cookie = browser.client.cookies.get(SESSION_COOKIE)
    assert session_cookie

    response = browser.post("/portal/rights/erasure", {"confirm": "yes"})

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/erased?done=completed"
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
    final = browser.get(response.headers["location"])
    assert final.status_code == 200
    assert "Your data was erased and your account closed." in text(final)
    assert requests_of(api, patient)[-1] == (Right.ERASURE, RequestStatus.COMPLETED)
    with api.session() as session:
        account = session.get(User, patient.id)
        assert account is not None
        assert account.disabled_at is not None
        export = session.get(SubjectExport, uuid.UUID(export_id))
        assert export is not None
        assert export.status is ExportStatus.DELETED
    # The session no longer works, even with the old cookie put back.
    assert browser.get("/portal/rights").headers["location"].startswith("/signin?")
    browser.client.cookies.set(SESSION_COOKIE, session_cookie)
    assert browser.get("/portal/rights").headers["location"].startswith("/signin?")
    assert (
        pages.browser()
        .post("/signin", {"login": patient.login, "password": patient.password})
        .status_code
        != 303
    )


def test_an_erasure_that_keeps_a_part_says_so(
    api: ApiHarness, browser: PageBrowser, patient: TestUser
) -> None:
    completed = open_case(api, patient)
    complete(api, api.user(Role.COORDINATOR), completed)

    response = browser.post("/portal/rights/erasure", {"confirm": "yes"})

    assert response.headers["location"] == "/erased?done=partial"
    assert requests_of(api, patient)[-1] == (Right.ERASURE, RequestStatus.PARTIALLY_COMPLETED)
    final = text(browser.get(response.headers["location"]))
    assert "except for the treatment requests the law obliges us to keep" in final


def test_the_final_page_shows_only_the_notices_it_knows(pages: Pages) -> None:
    page = pages.browser().get("/erased?done=<script>")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "If you erased your data" in text(page)


def test_an_erasure_refused_before_anything_was_done_keeps_the_patient_signed_in(
    api: ApiHarness, browser: PageBrowser, patient: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = open_case(api, patient)

    def conflict(**_kwargs: object) -> None:
        raise ErasureConflict("a case changed while the erasure was prepared: nothing was erased")

    monkeypatch.setattr(rights_pages, "erase_own_data", conflict)

    response = browser.post("/portal/rights/erasure", {"confirm": "yes"})

    assert response.status_code == 409
    assert "nothing was erased" in text(response)
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert browser.get(f"/portal/cases/{case_id}").status_code == 200


def test_an_erasure_left_to_the_retention_run_still_signs_out(
    api: ApiHarness, browser: PageBrowser, patient: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_case(api, patient)

    def store_away(**_kwargs: object) -> None:
        raise StorageUnavailable("the object store did not answer")

    monkeypatch.setattr(erasure_service, "finish_shred", store_away)

    response = browser.post("/portal/rights/erasure", {"confirm": "yes"})

    assert response.headers["location"] == "/erased?done=pending"
    assert requests_of(api, patient) == [(Right.ERASURE, RequestStatus.OPEN)]
    assert "finished automatically shortly" in text(browser.get(response.headers["location"]))
    assert browser.get("/portal").headers["location"].startswith("/signin?")
