"""The whole story in a real browser, on the product as `make run` starts it.

A patient registers and files a treatment request, uploads two files (progress per file); the
privacy officer adds a partner; a coordinator forwards one file and copies link and code; the
partner opens the link, enters the code and downloads the same bytes; the patient sees the
disclosure; an analyst requests an extract, follows it and downloads it; the patient asks for
erasure and the link stops working. Every page visited is photographed.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Error, Page, expect

from api.web.i18n import catalog
from tests.browser.conftest import STAFF_PASSWORD, Camera, Product
from tests.factories import pdf_bytes, png_bytes

EN = catalog("en")
PATIENT_EMAIL = "erika.story@example.org"
PATIENT_PASSWORD = "patient story password"
PARTNER = "Klinik am See"


def text(key: str, **fields: object) -> str:
    return EN[key].format(**fields) if fields else EN[key]


def sign_in(context: BrowserContext, login: str, password: str) -> Page:
    page = context.new_page()
    page.goto("/signin")
    page.locator("#login").fill(login)
    page.locator("#password").fill(password)
    page.locator("#password").press("Enter")  # in whatever language the page is
    return page


def download_bytes(page: Page, click: object) -> bytes:
    with page.expect_download() as pending:
        click()  # type: ignore[operator]
    path = pending.value.path()
    return Path(path).read_bytes()


def test_the_whole_story(
    product: Product, browser: Browser, camera: Camera, tmp_path: Path
) -> None:
    scan, report = tmp_path / "scan.png", tmp_path / "report.pdf"
    scan.write_bytes(png_bytes(64, 48, seed=7))  # a PNG without metadata passes unchanged
    report.write_bytes(pdf_bytes(2))

    # The patient registers, confirms the address with the mailed code and signs in.
    patient_context = browser.new_context(base_url=product.base_url, locale="en-GB")
    patient = patient_context.new_page()
    patient.goto("/register")
    patient.locator("#email").fill(PATIENT_EMAIL)
    patient.locator("#name").fill("Erika Mustermann")
    patient.locator("#birth_date").fill("1980-04-02")
    patient.locator("#sex").select_option("female")
    patient.locator("#country").select_option("DE")
    patient.locator("#password").fill(PATIENT_PASSWORD)
    patient.locator("#password_repeat").fill(PATIENT_PASSWORD)
    camera.shoot(patient, "patient-register")
    patient.get_by_role("button", name=text("patient.register_button")).click()
    patient.goto("/confirm")
    patient.locator("#code").fill(product.code_in_last_mail(PATIENT_EMAIL))
    patient.get_by_role("button", name=text("patient.confirm_button")).click()
    expect(patient).to_have_url(re.compile(r"/confirm\?done=confirmed$"))
    patient = sign_in(patient_context, PATIENT_EMAIL, PATIENT_PASSWORD)
    expect(patient).to_have_url(f"{product.base_url}/portal")

    # ... files a treatment request with the consent text, and uploads two files.
    patient.get_by_role("link", name=text("patient.new_case_button")).click()
    camera.shoot(patient, "patient-new-request")
    patient.locator("#consent").check()
    patient.get_by_role("button", name=text("patient.file_button")).click()
    expect(patient).to_have_url(re.compile(r"/portal/cases/[0-9a-f-]{36}"))
    case_url = patient.url.split("?")[0]
    patient.locator("#files").set_input_files([str(report), str(scan)])
    patient.get_by_role("button", name=text("patient.upload_button")).click()
    expect(patient.locator(".uploads li.done")).to_have_count(2, timeout=30_000)
    expect(patient.locator(".uploads progress").first).to_have_attribute("value", "100")
    camera.shoot(patient, "patient-uploaded")
    patient.goto(case_url)
    expect(patient.locator("#documents ~ table").first).to_contain_text("scan.png")
    camera.shoot(patient, "patient-case")

    # The privacy officer adds the partner clinic.
    officer_context = browser.new_context(base_url=product.base_url, locale="en-GB")
    officer = sign_in(officer_context, product.staff["admin"], STAFF_PASSWORD)
    camera.shoot(officer, "officer-overview")
    officer.goto("/privacy/partners")
    officer.locator("#kind-new").select_option("clinic")
    officer.locator("#name-new").fill(PARTNER)
    officer.locator("#email-new").fill("befunde@klinik-am-see.example")
    officer.get_by_role("button", name=text("privacy.add_partner_button")).click()
    expect(officer.locator("main")).to_contain_text(PARTNER)
    camera.shoot(officer, "officer-partners")

    # A coordinator forwards the scan under the patient's consent and copies link and code.
    coordinator_context = browser.new_context(base_url=product.base_url, locale="en-GB")
    coordinator_context.grant_permissions(["clipboard-read", "clipboard-write"])
    coordinator = sign_in(coordinator_context, product.staff["coordinator"], STAFF_PASSWORD)
    camera.shoot(coordinator, "coordinator-cases")
    coordinator.locator("main table a").first.click()
    camera.shoot(coordinator, "coordinator-case")
    coordinator.get_by_label(re.compile(r"^scan\.png")).check()
    partner_id = coordinator.locator("#partner_id option", has_text=PARTNER).get_attribute("value")
    coordinator.locator("#partner_id").select_option(partner_id)
    coordinator.locator("#purpose").select_option(index=1)
    coordinator.locator("#legal_basis").select_option("art9-2-a")
    coordinator.locator("#consent_id").select_option(index=1)  # the consent given on filing
    coordinator.get_by_role("button", name=text("console.forward_button")).click()
    camera.shoot(coordinator, "coordinator-forward-answer")
    link_url = coordinator.locator("#link-url").inner_text().strip()
    access_code = coordinator.locator("#access-code").inner_text().strip()
    coordinator.get_by_role("button", name=text("console.copy_code")).click()
    assert coordinator.evaluate("navigator.clipboard.readText()") == access_code
    camera.shoot(coordinator, "coordinator-forwarded")

    # The partner opens the link (no account), enters the code and downloads the same bytes.
    partner_context = browser.new_context(base_url=product.base_url, locale="en-GB")
    partner = partner_context.new_page()
    partner.goto(link_url)
    # The partner sees a generic name: the patient's own file name stays sealed.
    expect(partner.locator("main")).to_contain_text("document-1.png")
    expect(partner.locator("main")).not_to_contain_text("scan.png")
    camera.shoot(partner, "partner-link")
    partner.locator("#code").fill(access_code)
    button = partner.get_by_role("button", name=text("link.download_one", name="document-1.png"))
    assert download_bytes(partner, button.click) == scan.read_bytes()

    # The patient sees the disclosure: who, what, when, why, on which basis, and the download.
    patient.goto("/portal/disclosures")
    disclosures = patient.locator("main")
    expect(disclosures).to_contain_text(PARTNER)
    expect(disclosures).to_contain_text("scan.png")
    camera.shoot(patient, "patient-disclosures")

    # An analyst requests an extract, follows its progress and downloads it with its report.
    analyst_context = browser.new_context(base_url=product.base_url, locale="en-GB")
    analyst = sign_in(analyst_context, product.staff["analyst"], STAFF_PASSWORD)
    today = date.today().isoformat()
    analyst.locator("#period_from").fill(f"{date.today().year - 1}-01-01")
    analyst.locator("#period_to").fill(today)
    for field in ("age_band", "sex", "country", "treatment_result"):
        analyst.locator(f"#field-{field}").check()
    camera.shoot(analyst, "analyst-request")
    analyst.get_by_role("button", name=text("analysis.request_button")).click()
    camera.shoot(analyst, "analyst-requested")
    parquet = analyst.get_by_role("link", name=text("analysis.download_parquet"))
    expect(parquet).to_be_visible(timeout=60_000)  # the page polls until the worker is done
    camera.shoot(analyst, "analyst-extract")
    assert download_bytes(analyst, parquet.click)[:4] == b"PAR1"

    # The patient asks for erasure; the partner's link stops working.
    patient.goto("/portal/rights")
    camera.shoot(patient, "patient-rights")
    patient.goto("/portal/rights/erasure")
    camera.shoot(patient, "patient-erasure")
    patient.locator("#confirm").check()
    patient.once("dialog", lambda dialog: dialog.accept())
    patient.get_by_role("button", name=text("rights.erasure_button")).click()
    expect(patient).to_have_url(re.compile(r"/erased"))
    camera.shoot(patient, "patient-erased")
    gone = partner.goto(link_url)
    assert gone is not None
    assert gone.status == 410
    camera.shoot(partner, "partner-link-gone")
    assert patient.goto("/portal") is not None
    expect(patient).to_have_url(re.compile(r"/signin"))  # the account is closed

    for context in (patient_context, officer_context, coordinator_context, partner_context):
        context.close()
    analyst_context.close()


TOUR = {
    None: ["/signin", "/register", "/confirm", "/accept-invitation"],
    "coordinator": ["/console"],
    "analyst": ["/analysis"],
    "admin": [
        "/privacy",
        "/privacy/users",
        "/privacy/partners",
        "/privacy/requests",
        "/privacy/audit",
        "/privacy/retention",
    ],
}
# Every input a reader can reach has a label (or an accessible name) and the page one h1.
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea')]
    .filter((field) => !field.labels.length && !field.getAttribute('aria-label'))
    .map((field) => field.name)"""


def test_every_page_in_both_languages(product: Product, browser: Browser, camera: Camera) -> None:
    """Each role's pages in English and German: answered, photographed, one h1, the page's
    language declared, every field labelled, no script error or CSP violation."""
    for role, paths in TOUR.items():
        for language in ("en", "de"):
            context = browser.new_context(base_url=product.base_url, locale=language)
            page = (
                context.new_page()
                if role is None
                else sign_in(context, product.staff[role], STAFF_PASSWORD)
            )
            problems: list[str] = []
            watch_for_script_errors(page, problems)
            for path in paths:
                response = page.goto(f"{path}?lang={language}")
                assert response is not None
                assert response.status == 200, path
                assert response.headers["content-security-policy"].startswith("default-src 'none'")
                expect(page.locator("html")).to_have_attribute("lang", language)
                expect(page.locator("h1")).to_have_count(1)
                assert page.evaluate(UNLABELLED) == [], path
                camera.shoot(page, f"{role or 'anyone'}-{language}{path.replace('/', '-')}")
            assert problems == [], (role, language, problems)
            context.close()


def watch_for_script_errors(page: Page, into: list[str]) -> None:
    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            into.append(message.text)

    def on_error(error: Error) -> None:
        into.append(str(error))

    page.on("console", on_console)
    page.on("pageerror", on_error)
