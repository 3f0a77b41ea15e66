"""The browser frontend driven by a real Chromium (Debian's) against the local stack."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and not os.environ.get("CI"):  # CI installs it: there, missing fails
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 10_000
PASSWORD = "correct-horse-battery"


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(browser: Browser, local_stack: dict) -> Iterator[Callable[[], Page]]:
    """Pages on the frontend, each in its own context; fails the test on page errors."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_() -> Page:
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(local_stack["frontend_url"])
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == []


def register(page: Page, username: str, password: str = PASSWORD) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#register")
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)


def message(page: Page, text: str):
    return page.locator("#messages .message").filter(has=page.locator(".text", has_text=text))


def test_two_users_see_a_message_one_sends(open_page) -> None:
    """A message one signed-in user sends appears in both users' pages."""
    alice, bob = open_page(), open_page()
    alice_name, bob_name = unique("alice"), unique("bob")
    register(alice, alice_name)
    register(bob, bob_name)

    text = f"hello from alice {uuid.uuid4().hex}"
    alice.fill("#message-input", text)
    alice.press("#message-input", "Enter")

    for page in (alice, bob):
        sent = message(page, text)
        expect(sent).to_have_count(1, timeout=WAIT_MS)
        expect(sent.locator(".user")).to_have_text(alice_name)
        expect(sent.locator(".text")).to_have_text(text)
    expect(alice.locator("#message-input")).to_have_value("")

    reply = f"hi alice, bob here {uuid.uuid4().hex}"
    bob.fill("#message-input", reply)
    bob.click("#send")
    for page in (alice, bob):
        expect(message(page, reply).locator(".user")).to_have_text(bob_name, timeout=WAIT_MS)


def test_message_html_is_shown_as_text(open_page) -> None:
    """Markup and script in a message are displayed literally, never parsed or run."""
    page = open_page()
    register(page, unique("mallory"))

    payload = f'<img src=x onerror="window.__xss=1"><b>bold</b> {uuid.uuid4().hex}'
    page.fill("#message-input", payload)
    page.click("#send")

    text = page.locator("#messages .message .text").last
    expect(text).to_have_text(payload, timeout=WAIT_MS)
    assert text.evaluate("node => node.textContent") == payload
    assert page.locator("#messages b").count() == 0
    assert page.locator("#messages img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_wrong_password_shows_an_error(open_page, local_stack: dict) -> None:
    """Logging in with a wrong password shows the server's error and stays on sign-in."""
    username = unique("carol")
    response = httpx.post(
        local_stack["api_url"] + "/api/auth/register",
        json={"username": username, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text

    page = open_page()
    page.fill("#username", username)
    page.fill("#password", "not-the-password")
    page.click("#login")

    expect(page.locator("#auth-error")).to_have_text("Invalid credentials", timeout=WAIT_MS)
    expect(page.locator("#chat-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('aurora.token')") is None
