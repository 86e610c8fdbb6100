"""The privacy officer's pages: every page in both languages; the register with overdue and
due-soon marks, filters and an erasure's kept parts; staff accounts added and disabled;
partners added, changed and disabled; the audit chain verified (intact, and broken after an
event was tampered with) and sealed; the retention dry run and legal holds; refusals that say
why; and nobody else getting in."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from tests.api.test_cases import open_case
from tests.api.test_erasure import erase
from tests.api.test_retention import complete
from tests.api.test_rights_register import stored_request
from tests.apiharness import ApiHarness, TestUser
from tests.web.conftest import PageBrowser, Pages
from vault.accounts.models import Role, User
from vault.audit.checkpoints import checkpoint_key
from vault.audit.models import AuditEvent, AuditHead
from vault.cases.models import Case, LegalHoldReason
from vault.partners.models import Partner
from vault.subject_rights.models import Right

PAGES = (
    "/privacy",
    "/privacy/requests",
    "/privacy/users",
    "/privacy/partners",
    "/privacy/audit",
    "/privacy/retention",
)
PARTNER = {"kind": "clinic", "name": "Klinik am See", "contact_email": "aufnahme@klinik.example"}
ALERT = '<p class="error" role="alert">'


@pytest.fixture
def admin(api: ApiHarness) -> TestUser:
    return api.user(Role.ADMIN)


@pytest.fixture
def officer(pages: Pages, admin: TestUser) -> PageBrowser:
    return pages.signed_in(admin)


def head_seq(api: ApiHarness) -> int:
    with api.session() as session:
        return session.exec(select(AuditHead)).one().seq


def stored_case(api: ApiHarness, case_id: str) -> Case:
    with api.session() as session:
        case = session.get(Case, uuid.UUID(case_id))
        assert case is not None
        return case


def partners(api: ApiHarness) -> list[Partner]:
    with api.session() as session:
        return list(session.exec(select(Partner).order_by(col(Partner.name))).all())


@pytest.mark.parametrize("path", PAGES)
def test_every_page_in_both_languages(officer: PageBrowser, path: str) -> None:
    english = officer.get(path)
    assert english.status_code == 200, english.text
    assert english.text.count("<h1>") == 1
    assert f'href="{path}" aria-current="page"' in english.text
    german = officer.get(f"{path}?lang=de")
    assert german.status_code == 200
    assert '<html lang="de">' in german.text
    assert "Datenschutz" in german.text or "Prüfkette" in german.text
    assert "Sign out" not in german.text  # no English text left on the German page


def test_the_overview_marks_overdue_and_due_soon_requests(
    api: ApiHarness, officer: PageBrowser
) -> None:
    patient = api.patient()
    now = api.clock()
    overdue = stored_request(api, patient, Right.ACCESS, received_at=now - timedelta(days=40))
    soon = stored_request(api, patient, Right.RECTIFICATION, received_at=now - timedelta(days=27))
    fresh = stored_request(api, patient, Right.RESTRICTION, received_at=now)
    closed = stored_request(
        api, patient, Right.OBJECTION, received_at=now - timedelta(days=60), closed=True
    )

    page = officer.get("/privacy").text

    rows = {request_id: _row(page, request_id) for request_id in (overdue, soon, fresh)}
    assert "Overdue" in rows[overdue]
    assert "Due soon" not in rows[overdue]
    assert "Due soon" in rows[soon]
    assert "Overdue" not in rows[soon]
    assert "badge" not in rows[fresh]
    assert closed not in page
    assert "3 open: 1 overdue, 1 due within 7 days." in page
    german = officer.get("/privacy?lang=de").text
    assert "Überfällig" in german
    assert "Bald fällig" in german


def _row(page: str, request_id: str) -> str:
    match = re.search(
        rf"<tr>\s*<td><a href=\"/privacy/requests/{request_id}\">.*?</tr>", page, re.S
    )
    assert match, f"no row of request {request_id}"
    return match.group(0)


def test_the_register_filters_and_lists_open_requests_first(
    api: ApiHarness, officer: PageBrowser
) -> None:
    patient = api.patient()
    now = api.clock()
    closed = stored_request(
        api, patient, Right.ACCESS, received_at=now - timedelta(days=50), closed=True
    )
    later = stored_request(api, patient, Right.OBJECTION, received_at=now)
    soon = stored_request(api, patient, Right.RECTIFICATION, received_at=now - timedelta(days=27))

    every = officer.get("/privacy/requests").text
    assert every.index(soon) < every.index(later) < every.index(closed)  # open ones first
    assert "on " in _row(every, closed)  # its completion date
    only_open = officer.get("/privacy/requests?state=open").text
    assert closed not in only_open
    assert later in only_open
    due_soon = officer.get("/privacy/requests?due_soon=true").text
    assert soon in due_soon
    assert later not in due_soon
    assert closed not in due_soon
    by_right = officer.get("/privacy/requests?right=objection").text
    assert later in by_right
    assert soon not in by_right

    detail = officer.get(f"/privacy/requests/{closed}")
    assert detail.status_code == 200
    assert "Completed" in detail.text
    assert "Received on" in detail.text
    assert "What the erasure kept" not in detail.text
    assert officer.get(f"/privacy/requests/{uuid.uuid4()}").status_code == 404


def test_an_erasure_shows_what_it_kept_and_why(
    api: ApiHarness, officer: PageBrowser, admin: TestUser
) -> None:
    patient = api.patient()
    coordinator = api.user(Role.COORDINATOR)
    erased_id, held_id, completed_id = (open_case(api, patient) for _ in range(3))
    complete(api, coordinator, completed_id)
    hold = api.client.post(
        f"/admin/cases/{held_id}/legal-hold", headers=admin.headers, json={"reason": "litigation"}
    )
    assert hold.status_code == 200
    request_id = erase(api, patient).json()["request"]["id"]

    page = officer.get(f"/privacy/requests/{request_id}")

    assert page.status_code == 200
    assert "Partially completed" in page.text
    held_row = re.search(rf"<code>{held_id}</code>.*?</tr>", page.text, re.S)
    kept_row = re.search(rf"<code>{completed_id}</code>.*?</tr>", page.text, re.S)
    assert held_row
    assert kept_row
    assert "Legal claims (Art. 17(3)(e))" in held_row.group(0)
    assert "Litigation" in held_row.group(0)
    assert "While the legal hold lasts" in held_row.group(0)
    assert "Legal obligation (Art. 17(3)(b))" in kept_row.group(0)
    assert "Treatment and billing records must be kept" in kept_row.group(0)
    assert "2031" in kept_row.group(0)  # five years after completion
    assert erased_id not in page.text
    german = officer.get(f"/privacy/requests/{request_id}?lang=de").text
    assert "Rechtsansprüche" in german
    assert "Teilweise erledigt" in german


def test_staff_accounts_are_added_and_disabled(
    api: ApiHarness, officer: PageBrowser, admin: TestUser
) -> None:
    added = officer.post(
        "/privacy/users",
        {"role": "analyst", "login": "a.weber", "password": "a long enough passphrase"},
    )
    assert added.status_code == 303
    assert added.headers["location"] == "/privacy/users?done=added"
    token = api.sign_in("a.weber", "a long enough passphrase")
    me = api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "analyst"
    with api.session() as session:
        new_id = session.exec(select(User).where(User.role == Role.ANALYST)).one().id
    listed = officer.get("/privacy/users?done=added").text
    assert "The account was added." in listed
    assert str(new_id) in listed
    assert "a.weber" not in listed
    assert f'action="/privacy/users/{admin.id}/disable"' not in listed  # not oneself

    disabled = officer.post(f"/privacy/users/{new_id}/disable")

    assert disabled.status_code == 303
    assert disabled.headers["location"] == "/privacy/users?done=disabled"
    gone = api.client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 401
    assert f'action="/privacy/users/{new_id}/disable"' not in officer.get("/privacy/users").text
    assert officer.post(f"/privacy/users/{uuid.uuid4()}/disable").status_code == 404


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"role": "analyst", "password": "short"}, 422, "a password needs at least"),
        (
            {"role": "patient", "password": "a long enough passphrase"},
            422,
            "Check these fields: Role",
        ),
        ({"role": "analyst", "password": "a long enough passphrase", "login": "taken"}, 409, None),
    ],
    ids=["weak-password", "patient-role", "login-taken"],
)
def test_refused_accounts_say_why_and_keep_the_login(
    api: ApiHarness, officer: PageBrowser, form: dict[str, str], status: int, message: str | None
) -> None:
    api.user(Role.COORDINATOR, login="taken")
    with api.session() as session:
        before = len(session.exec(select(User)).all())
    login = form.get("login", "n.new")

    response = officer.post("/privacy/users", {"login": login, **form})

    assert response.status_code == status
    assert ALERT + (message or "this login is already in use") in response.text
    assert f'value="{login}"' in response.text
    assert form["password"] not in response.text
    with api.session() as session:
        assert len(session.exec(select(User)).all()) == before


def test_partners_are_added_changed_and_disabled(api: ApiHarness, officer: PageBrowser) -> None:
    created = officer.post("/privacy/partners", PARTNER)
    assert created.status_code == 303
    assert created.headers["location"] == "/privacy/partners?done=created"
    [partner] = partners(api)
    assert (partner.kind.value, partner.name, partner.disabled_at) == (
        "clinic",
        PARTNER["name"],
        None,
    )
    page = officer.get("/privacy/partners?done=created").text
    assert "The partner was added." in page
    assert f'action="/privacy/partners/{partner.id}"' in page

    changed = officer.post(
        f"/privacy/partners/{partner.id}",
        {**PARTNER, "kind": "rehabilitation", "contact_email": "neu@klinik.example"},
    )
    assert changed.status_code == 303
    [partner] = partners(api)
    assert (partner.kind.value, partner.contact_email) == ("rehabilitation", "neu@klinik.example")

    disabled = officer.post(f"/privacy/partners/{partner.id}/disable")
    assert disabled.status_code == 303
    [partner] = partners(api)
    assert partner.disabled_at is not None
    coordinator = api.user(Role.COORDINATOR)
    assert api.client.get("/partners", headers=coordinator.headers).json() == []
    assert "Disabled on" in officer.get("/privacy/partners").text
    unknown = officer.post(f"/privacy/partners/{uuid.uuid4()}", PARTNER)
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"contact_email": "not an address"}, None),
        ({"name": ""}, "Check these fields: Name."),
        ({"kind": "spa"}, "Check these fields: Kind."),
    ],
    ids=["bad-address", "no-name", "unknown-kind"],
)
def test_refused_partners_say_why_and_keep_what_was_typed(
    api: ApiHarness, officer: PageBrowser, fields: dict[str, str], message: str | None
) -> None:
    response = officer.post("/privacy/partners", {**PARTNER, **fields})

    assert response.status_code == 422
    assert ALERT + (message or "") in response.text
    shown = {**PARTNER, **fields}
    if shown["name"]:
        assert f'value="{shown["name"]}"' in response.text
    assert partners(api) == []


def test_a_refused_change_is_shown_at_that_partner(api: ApiHarness, officer: PageBrowser) -> None:
    officer.post("/privacy/partners", PARTNER)
    [partner] = partners(api)

    response = officer.post(
        f"/privacy/partners/{partner.id}", {**PARTNER, "contact_email": "nowhere"}
    )

    assert response.status_code == 422
    section = re.search(rf'<section id="partner-{partner.id}".*?</section>', response.text, re.S)
    assert section
    assert ALERT in section.group(0)
    assert 'value="nowhere"' in section.group(0)
    assert partners(api)[0].contact_email == PARTNER["contact_email"]


def test_the_audit_chain_is_verified_and_sealed(api: ApiHarness, officer: PageBrowser) -> None:
    assert "does not store verification results" in officer.get("/privacy/audit").text
    before = head_seq(api)

    verified = officer.post("/privacy/audit/verify")

    assert verified.status_code == 200
    assert "The chain is intact" in verified.text
    assert re.search(rf"<dt>Events checked</dt>\s*<dd>{before}</dd>", verified.text)
    with api.session() as session:
        last = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
        assert last is not None
        assert last.action == "audit.verify"

    sealed = officer.post("/privacy/audit/checkpoint")
    assert sealed.status_code == 200
    seq = head_seq(api) - 1  # the checkpoint seals the head; its own event follows it
    assert api.runtime.blob_store.exists(checkpoint_key(seq))
    assert f"Checkpoint written for event {seq}" in sealed.text
    again = officer.post("/privacy/audit/verify?lang=de")
    assert "Die Kette ist unversehrt" in again.text
    assert re.search(r"<dt>Geprüfte Kontrollpunkte</dt>\s*<dd>1</dd>", again.text)


def test_a_tampered_event_shows_the_chain_broken(api: ApiHarness, officer: PageBrowser) -> None:
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    with api.session() as session:
        session.execute(sa.update(table).where(table.c.seq == 1).values(outcome="denied"))
        session.commit()

    response = officer.post("/privacy/audit/verify")

    assert response.status_code == 200
    assert ALERT + "The chain is broken at event 1: an event&#39;s content" in response.text
    assert re.search(r"<dt>First broken event</dt>\s*<dd>1</dd>", response.text)
    assert "The chain is intact" not in response.text
    german = officer.post("/privacy/audit/verify?lang=de").text
    assert "Die Kette ist bei Eintrag 1 gebrochen" in german


def _completed_case(api: ApiHarness) -> str:
    patient = api.patient()
    case_id = open_case(api, patient)
    complete(api, api.user(Role.COORDINATOR), case_id)
    return case_id


def test_legal_holds_are_placed_and_lifted_from_the_dry_run(
    api: ApiHarness, pages: Pages, admin: TestUser, officer: PageBrowser
) -> None:
    case_id = _completed_case(api)
    page = officer.get("/privacy/retention").text
    assert "No case is due." in page
    assert f'action="/privacy/cases/{case_id}/legal-hold"' in page  # falling due next
    assert "2031" in page

    placed = officer.post(f"/privacy/cases/{case_id}/legal-hold", {"reason": "malpractice-claim"})

    assert placed.status_code == 303
    assert placed.headers["location"] == f"/privacy/retention?case={case_id}&done=held#other"
    assert stored_case(api, case_id).legal_hold_reason is LegalHoldReason.MALPRACTICE_CLAIM
    held = officer.get(f"/privacy/retention?case={case_id}&done=held").text
    assert "The legal hold was placed." in held
    assert f'action="/privacy/cases/{case_id}/legal-hold/lift"' in held

    # Once its date has passed, the dry run lists it as held (not due), with its reason.
    api.clock.now = api.clock() + timedelta(days=5 * 366)
    officer = pages.signed_in(admin)  # the page session ended while the clock jumped
    due_page = officer.get("/privacy/retention").text
    held_row = re.search(rf"<tr>\s*<td><code>{case_id}</code></td>.*?</tr>", due_page, re.S)
    assert held_row
    assert "Malpractice claim" in held_row.group(0)
    assert "No case is due." in due_page

    lifted = officer.post(f"/privacy/cases/{case_id}/legal-hold/lift")

    assert lifted.status_code == 303
    assert stored_case(api, case_id).legal_hold_at is None
    after = officer.get("/privacy/retention").text
    assert "No case is under a legal hold." in after
    assert "Cases the next run would shred: 1." in after


def test_a_hold_on_a_case_named_by_its_id(api: ApiHarness, officer: PageBrowser) -> None:
    patient = api.patient()
    case_id = open_case(api, patient)  # open: not in the dry run at all
    page = officer.get(f"/privacy/retention?case={case_id}").text
    assert f'action="/privacy/cases/{case_id}/legal-hold"' in page

    assert (
        officer.post(f"/privacy/cases/{case_id}/legal-hold", {"reason": "litigation"}).status_code
        == 303
    )
    assert stored_case(api, case_id).legal_hold_reason is LegalHoldReason.LITIGATION


@pytest.mark.parametrize(
    ("case", "form", "status", "message"),
    [
        ("known", {"reason": "my lawyer said"}, 422, "Choose a reason for the legal hold."),
        ("unknown", {"reason": "litigation"}, 404, "no such case"),
    ],
    ids=["bad-reason", "unknown-case"],
)
def test_refused_holds_say_why(
    api: ApiHarness,
    officer: PageBrowser,
    case: str,
    form: dict[str, Any],
    status: int,
    message: str,
) -> None:
    case_id = _completed_case(api) if case == "known" else str(uuid.uuid4())

    response = officer.post(f"/privacy/cases/{case_id}/legal-hold", form)

    assert response.status_code == status
    assert ALERT + message in response.text
    if case == "known":
        assert stored_case(api, case_id).legal_hold_at is None


def test_no_other_role_reaches_the_privacy_pages(api: ApiHarness, pages: Pages) -> None:
    for role in (Role.COORDINATOR, Role.ANALYST):
        browser = pages.signed_in(api.user(role))
        for path in PAGES:
            assert browser.get(path).status_code == 403, (role, path)
        assert browser.post("/privacy/audit/verify").status_code == 403
    patient = pages.signed_in(api.patient())
    assert patient.post("/privacy/partners", PARTNER).status_code == 403
    assert partners(api) == []
    nobody = pages.browser()
    assert nobody.get("/privacy").headers["location"].startswith("/signin?")
