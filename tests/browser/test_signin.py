"""The sign-in page in a real browser: language, keyboard use, CSP, wrong password, sign-out."""

from __future__ import annotations

from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.browser.conftest import STAFF_PASSWORD, Camera, Product


def test_sign_in_with_the_keyboard_in_german_and_out_again(
    product: Product, browser: Browser, camera: Camera
) -> None:
    context = browser.new_context(base_url=product.base_url, locale="de-DE")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: _collect(message, problems))
    page.on("pageerror", lambda error: problems.append(str(error)))
    response = page.goto("/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("h1")).to_have_text("Anmelden")
    camera.shoot(page, "signin-de")

    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.locator("a.skip")).to_be_focused()
    page.get_by_label("E-Mail-Adresse oder Benutzername").fill(product.staff["coordinator"])
    page.get_by_label("Passwort").fill("not the password")
    page.get_by_label("Passwort").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Falscher Benutzername")
    camera.shoot(page, "signin-refused-de")

    page.get_by_label("Passwort").fill(STAFF_PASSWORD)
    page.get_by_label("Passwort").press("Enter")
    expect(page).to_have_url(f"{product.base_url}/console")
    page.get_by_role("link", name="English").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("h1")).to_have_text("Sign in")
    assert page.context.cookies()[0]["httpOnly"]
    assert not problems, problems  # no CSP violation, no script error
    context.close()


def _collect(message: ConsoleMessage, into: list[str]) -> None:
    # A CSP violation or script error; not the refused sign-in itself (an answer of 401).
    if message.type == "error" and "status of 401" not in message.text:
        into.append(message.text)
