"""The coordinator console: the case list, a case with its outcome, completion, forwarding (the
link and code shown once, the partner downloads with them), refusals that say why and store
nothing, revocation, and no other role getting in."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlmodel import select

from api.web import console as console_pages
from tests.api.test_transfers import (
    Forwardable,
    assert_nothing_forwarded,
    audit_actions,
    forwardable,
)
from tests.apiharness import ApiHarness
from tests.factories import PARTNER_EMAIL, PARTNER_NAME
from tests.web.conftest import PageBrowser, Pages
from vault.accounts.models import Role
from vault.links.models import Link
from vault.transfers.models import Transfer

OUTCOME = {
    "diagnosis_codes": "m17.1, I10",
    "result": "improved",
    "treatment_start": "2026-09-01",
    "treatment_end": "2026-10-15",
    "final_invoice_total": "12480,50",
    "currency": "eur",
}


@pytest.fixture
def setup(api: ApiHarness) -> Forwardable:
    return forwardable(api)


@pytest.fixture
def console(pages: Pages, setup: Forwardable) -> PageBrowser:
    return pages.signed_in(setup.coordinator)


def case_url(setup: Forwardable) -> str:
    return f"/console/cases/{setup.case_id}"


def transfer_form(setup: Forwardable, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "document_ids": setup.document_ids,
        "partner_id": setup.partner_id,
        "purpose": "treatment-check",
        "legal_basis": "art9-2-a",
        "consent_id": setup.consent_id,
        "expires_in_days": "7",
        "max_downloads": "5",
    }
    fields.update(overrides)
    return fields


def secret(page: str, element_id: str) -> str:
    match = re.search(rf'<code class="secret" id="{element_id}">([^<]+)</code>', page)
    assert match, f"no secret {element_id} on the page"
    return html.unescape(match.group(1))


def case_detail(api: ApiHarness, setup: Forwardable) -> dict[str, Any]:
    response = api.client.get(f"/cases/{setup.case_id}", headers=setup.coordinator.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_case_list_in_both_languages_with_a_status_filter(
    api: ApiHarness, setup: Forwardable, console: PageBrowser
) -> None:
    other = forwardable(api)
    completed = console.post(
        f"/console/cases/{other.case_id}/complete",
        {"completed_at": "2026-11-24T09:00", "confirm": "yes"},
    )
    assert completed.status_code == 303, completed.text

    english = console.get("/console")
    german = console.get("/console?lang=de")
    only_open = console.get("/console?status=open")

    assert english.status_code == german.status_code == only_open.status_code == 200
    for case_id in (setup.case_id, other.case_id):
        assert f'href="/console/cases/{case_id}"' in english.text
    assert str(setup.patient.patient_id)[:8] in english.text
    assert "Erika" not in english.text  # a reference, never the patient's name
    assert "Deletion due" in english.text
    assert "Nov 24, 2031" in english.text  # completed 2026-11-24: deleted five years later
    assert "Five years after completion" in english.text
    assert "Löschung fällig" in german.text
    assert "24.11.2031" in german.text
    assert f'href="/console/cases/{setup.case_id}"' in only_open.text
    assert f'href="/console/cases/{other.case_id}"' not in only_open.text
    assert console.get("/console?status=").status_code == 200  # the filter's "any status"
    assert console.get("/console?status=lost").status_code == 422


def test_a_case_under_legal_hold_shows_held(
    api: ApiHarness, setup: Forwardable, console: PageBrowser
) -> None:
    held = api.client.post(
        f"/admin/cases/{setup.case_id}/legal-hold",
        headers=setup.admin.headers,
        json={"reason": "litigation"},
    )
    assert held.status_code == 200, held.text

    listed = console.get("/console")
    shown = console.get(case_url(setup) + "?lang=de")

    assert '<span class="badge">Held</span>' in listed.text
    assert '<span class="badge">Gesperrt</span>' in shown.text


def test_the_case_list_comes_in_pages(
    api: ApiHarness, setup: Forwardable, console: PageBrowser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_pages, "PAGE_SIZE", 1)
    api.clock.advance(seconds=1)
    newer = forwardable(api)

    first = console.get("/console?status=open")
    second = console.get("/console?status=open&offset=1")

    assert f'href="/console/cases/{newer.case_id}"' in first.text
    assert f'href="/console/cases/{setup.case_id}"' not in first.text
    assert 'href="/console?offset=1&amp;status=open" rel="next"' in first.text
    assert f'href="/console/cases/{setup.case_id}"' in second.text
    assert 'href="/console?offset=0&amp;status=open" rel="prev"' in second.text
    assert 'rel="next"' not in second.text


def test_the_case_page_in_both_languages(setup: Forwardable, console: PageBrowser) -> None:
    english = console.get(case_url(setup))
    german = console.get(case_url(setup) + "?lang=de")

    assert english.status_code == german.status_code == 200
    for page in (english.text, german.text):
        assert "befund.pdf" in page
        assert "scan.png" in page
        assert PARTNER_NAME in page
        assert f'value="{setup.consent_id}"' in page
        assert 'name="csrf_token"' in page
    assert "Forward documents" in english.text
    assert "Record the outcome" in english.text
    assert "Dokumente weiterleiten" in german.text
    assert "Ergebnis erfassen" in german.text
    assert "Ausdrückliche Einwilligung in Gesundheitsdaten" in german.text


def test_the_outcome_is_recorded_and_the_treatment_completed(
    api: ApiHarness, setup: Forwardable, console: PageBrowser
) -> None:
    saved = console.post(f"{case_url(setup)}/outcome", OUTCOME)

    assert saved.status_code == 303
    assert saved.headers["location"] == f"{case_url(setup)}?done=outcome#outcome"
    outcome = case_detail(api, setup)["outcome"]
    assert outcome["diagnosis_codes"] == ["M17.1", "I10"]
    assert outcome["final_invoice_total"] == "12480.50"
    assert outcome["currency"] == "EUR"
    shown = console.get(f"{case_url(setup)}?done=outcome")
    assert "The outcome is saved." in shown.text
    assert "€12,480.50" in shown.text
    assert "Correct the outcome" in shown.text

    unconfirmed = console.post(f"{case_url(setup)}/complete", {"completed_at": "2026-11-24T09:00"})
    assert unconfirmed.status_code == 422
    assert "Tick the confirmation" in unconfirmed.text
    assert case_detail(api, setup)["status"] == "open"

    done = console.post(
        f"{case_url(setup)}/complete", {"completed_at": "2026-11-24T09:00", "confirm": "yes"}
    )

    assert done.status_code == 303
    assert done.headers["location"] == f"{case_url(setup)}?done=completed"
    detail = case_detail(api, setup)
    assert detail["status"] == "completed"
    assert detail["treatment_completed_at"] == "2026-11-24T09:00:00Z"
    page = console.get(f"{case_url(setup)}?done=completed&lang=de")
    assert "als abgeschlossen markiert" in page.text
    assert "24.11.2031" in page.text  # the retention date
    assert 'action="/console/cases/' + setup.case_id + '/complete"' not in page.text
    again = console.post(
        f"{case_url(setup)}/complete", {"completed_at": "2026-11-24T08:45", "confirm": "yes"}
    )
    assert again.status_code == 409
    assert "bereits abgeschlossen" in again.text  # the refusal in the reader's language


@pytest.mark.parametrize(
    ("field", "value", "label"),
    [
        ("diagnosis_codes", "U07.1", "Diagnoses (ICD-10 codes)"),
        ("final_invoice_total", "12.480,50", "Final invoice total"),
        ("treatment_end", "2026-08-01", "cannot end before it started"),
    ],
)
def test_an_invalid_outcome_names_the_field_keeps_the_input_and_stores_nothing(
    api: ApiHarness, setup: Forwardable, console: PageBrowser, field: str, value: str, label: str
) -> None:
    response = console.post(f"{case_url(setup)}/outcome", {**OUTCOME, field: value})

    assert response.status_code == 422
    assert label in response.text
    assert f'value="{value}"' in response.text
    assert case_detail(api, setup)["outcome"] is None


def test_a_forward_shows_the_link_and_code_once_and_the_partner_downloads_with_them(
    api: ApiHarness, setup: Forwardable, console: PageBrowser, pages: Pages
) -> None:
    answer = console.post(f"{case_url(setup)}/transfers", transfer_form(setup, max_downloads="2"))

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    link_url, code = secret(answer.text, "link-url"), secret(answer.text, "access-code")
    assert link_url.startswith("http://127.0.0.1:8000/l/")
    assert 'data-copy="link-url"' in answer.text
    assert 'data-copy="access-code"' in answer.text
    assert "by another channel" in answer.text
    [mail] = [m for m in api.notifier.messages if m.to == PARTNER_EMAIL]
    assert link_url in mail.body
    assert code not in mail.body
    with api.session() as session:
        [transfer] = session.exec(select(Transfer)).all()
        [link] = session.exec(select(Link)).all()
        assert link.max_downloads == 2
        assert transfer.legal_basis == "art9-2-a"

    partner = pages.browser()
    path = link_url.removeprefix("http://127.0.0.1:8000")
    document_id = setup.document_ids[0]
    fetched = partner.client.post(f"{path}/documents/{document_id}", data={"code": code})
    assert fetched.status_code == 200
    own = api.client.get(f"/documents/{document_id}/content", headers=setup.patient.headers)
    assert fetched.content == own.content

    log = console.get(case_url(setup))
    assert "1 of 2" in log.text
    assert f'action="/console/transfers/{transfer.id}/revoke"' in log.text
    assert code not in log.text
    assert path not in log.text


@pytest.mark.parametrize(
    ("step", "overrides", "message"),
    [
        (None, {"consent_id": ""}, "this legal basis is missing"),
        ("withdraw", {}, "has withdrawn the consent you chose"),
        ("restrict", {"legal_basis": "art9-2-h", "consent_id": ""}, "is restricted (Art. 18"),
    ],
)
def test_a_refused_forward_says_why_and_what_to_do_and_stores_nothing(
    api: ApiHarness,
    setup: Forwardable,
    console: PageBrowser,
    step: str | None,
    overrides: dict[str, Any],
    message: str,
) -> None:
    if step == "withdraw":
        withdrawn = api.client.post(
            f"/cases/{setup.case_id}/consents/{setup.consent_id}/withdraw",
            headers=setup.patient.headers,
        )
        assert withdrawn.status_code == 200, withdrawn.text
    elif step == "restrict":
        placed = api.client.post(
            "/admin/restrictions",
            headers=setup.admin.headers,
            json={"patient_id": str(setup.patient.patient_id)},
        )
        assert placed.status_code == 201, placed.text
    mailed = len(api.notifier.messages)
    form = transfer_form(setup, **overrides)
    if step == "withdraw":  # the page no longer offers it; a stale form still sends it
        form["consent_id"] = setup.consent_id

    response = console.post(f"{case_url(setup)}/transfers", form)

    assert response.status_code == 409
    assert message in response.text
    assert 'role="alert"' in response.text
    assert f'<option value="{setup.partner_id}" selected>' in response.text  # kept as chosen
    assert_nothing_forwarded(api)
    assert audit_actions(api)[-1][0] != "transfer.create"
    assert ("transfer.refused", "refused") in audit_actions(api)
    assert len(api.notifier.messages) == mailed
    assert 'class="secret"' not in response.text


def test_a_refusal_is_explained_in_german_too(setup: Forwardable, console: PageBrowser) -> None:
    console.get("/console?lang=de")

    response = console.post(f"{case_url(setup)}/transfers", transfer_form(setup, consent_id=""))

    assert response.status_code == 409
    assert "Nicht weitergeleitet: Die Rechtsgrundlage fehlt." in response.text


def test_an_incomplete_forwarding_form_names_its_fields(
    api: ApiHarness, setup: Forwardable, console: PageBrowser
) -> None:
    form = transfer_form(setup, document_ids=[], purpose="")

    response = console.post(f"{case_url(setup)}/transfers", form)

    assert response.status_code == 422
    assert "Please check these fields: Documents to forward, Purpose." in response.text
    assert_nothing_forwarded(api)


def test_revoking_stops_the_link(
    api: ApiHarness, setup: Forwardable, console: PageBrowser, pages: Pages
) -> None:
    answer = console.post(f"{case_url(setup)}/transfers", transfer_form(setup))
    path = secret(answer.text, "link-url").removeprefix("http://127.0.0.1:8000")
    with api.session() as session:
        [transfer] = session.exec(select(Transfer)).all()

    revoked = console.post(f"/console/transfers/{transfer.id}/revoke")

    assert revoked.status_code == 303
    assert revoked.headers["location"] == f"{case_url(setup)}?done=revoked#transfers"
    assert pages.browser().get(path).status_code == 410
    log = console.get(f"{case_url(setup)}?done=revoked")
    assert "its link no longer works" in log.text
    assert "Revoked" in log.text
    assert f'action="/console/transfers/{transfer.id}/revoke"' not in log.text


@pytest.mark.parametrize("role", [Role.PATIENT, Role.ANALYST, Role.ADMIN])
def test_other_roles_get_403_and_change_nothing(
    api: ApiHarness, setup: Forwardable, console: PageBrowser, pages: Pages, role: Role
) -> None:
    answer = console.post(f"{case_url(setup)}/transfers", transfer_form(setup))
    assert answer.status_code == 200
    with api.session() as session:
        [transfer] = session.exec(select(Transfer)).all()
    user = setup.patient if role is Role.PATIENT else api.user(role)
    other = pages.signed_in(user)

    assert other.get("/console").status_code == 403
    assert other.get(case_url(setup)).status_code == 403
    assert other.post(f"/console/transfers/{transfer.id}/revoke").status_code == 403
    assert other.post(f"{case_url(setup)}/outcome", OUTCOME).status_code == 403
    with api.session() as session:
        assert session.get(Transfer, transfer.id).revoked_at is None  # type: ignore[union-attr]
    assert case_detail(api, setup)["outcome"] is None


def test_an_unknown_case_is_a_404_page(console: PageBrowser) -> None:
    response = console.get("/console/cases/7d0f5d1c-8a43-4c8e-a0b0-7f7b5a1f2c3d")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
