"""What the browser tests share: Debian's Chromium, and helpers that drive the
page or stand between it and the fan-out server (`Line`)."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists() and not os.environ.get("CI"):  # CI installs it: there, missing fails
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)",
        allow_module_level=True,
    )

from playwright.sync_api import (  # noqa: E402
    BrowserContext,
    Page,
    WebSocketRoute,
    expect,
)

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


def register(page: Page, username: str, password: str = PASSWORD) -> None:
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#register")
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)


def message(page: Page, text: str):
    return page.locator("#messages .message").filter(has=page.locator(".text", has_text=text))


def stored_session(page: Page) -> dict:
    """The session the page keeps for every tab of its browser."""
    return page.evaluate("JSON.parse(localStorage.getItem('aurora.session'))")


def session_token(page: Page) -> str:
    return stored_session(page)["token"]


def hearing_storage_late(page: Page) -> Callable[[], None]:
    """Reloads `page` able to hold back the storage events that tell it of the
    other tabs' writes, as Chromium may deliver them late; answers the call
    that starts holding them. (Listeners on one target run in the order they
    were added: this one, added before the page's own, can stop the event.)"""
    page.context.add_init_script(
        """addEventListener("storage", (event) => {
            if (window.storageLate) event.stopImmediatePropagation();
        });"""
    )
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    return lambda: page.evaluate("window.storageLate = true")


def signed_out_locks(page: Page) -> list[str]:
    """The locks the page's tabs hold to tell each other of a logout."""
    held = page.evaluate("navigator.locks.query().then(({ held }) => held.map((l) => l.name))")
    return [name for name in held if name.startswith("aurora.signed-out:")]


def me(local_stack: dict, token: str) -> httpx.Response:
    return httpx.get(
        local_stack["api_url"] + "/api/auth/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


class Line:
    """One page WebSocket routed through the test to the real fan-out server,
    as a network would carry it, except that the test can lose what the page
    says (`drop`), hold back what the server says (`hold`) and cut the line."""

    def __init__(self, route: WebSocketRoute, *, hold: bool) -> None:
        self.route = route
        self.hold = hold
        self.drop = False
        self.held: list[str | bytes] = []
        self.from_page: list[dict] = []
        self.from_server: list[dict] = []
        self.server = route.connect_to_server()
        route.on_message(self._page_said)
        self.server.on_message(self._server_said)

    def _page_said(self, frame: str | bytes) -> None:
        self.from_page.append(json.loads(frame))
        if not self.drop:
            self.server.send(frame)

    def _server_said(self, frame: str | bytes) -> None:
        self.from_server.append(json.loads(frame))
        if self.hold:
            self.held.append(frame)
        else:
            self.route.send(frame)

    def release(self) -> None:
        self.hold = False
        for frame in self.held:
            self.route.send(frame)
        self.held.clear()

    def cut(self, code: int, reason: str) -> None:
        self.route.close(code=code, reason=reason)
        self.server.close()

    def client_ids(self, text: str) -> list[str]:
        """The client_id of each `message` with this text the page sent here."""
        return [f["client_id"] for f in self.from_page if f.get("text") == text]


def route_through_lines(page: Page | BrowserContext, ws_url: str) -> tuple[list[Line], dict]:
    """Route the WebSockets of a page, or of every page of a context (its tabs)."""
    lines: list[Line] = []
    new_lines = {"hold": False}
    page.route_web_socket(
        re.compile("^" + re.escape(ws_url)),
        lambda route: lines.append(Line(route, hold=new_lines["hold"])),
    )
    return lines, new_lines


def wait_for_lines(page: Page, lines: list[Line], count: int) -> Line:
    deadline = time.monotonic() + WAIT_MS / 1000
    while len(lines) < count:
        assert time.monotonic() < deadline, f"the page opened {len(lines)} of {count} sockets"
        page.wait_for_timeout(50)
    return lines[count - 1]


def say(page: Page, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def wait_until(page: Page, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while not condition():
        assert time.monotonic() < deadline, what
        page.wait_for_timeout(50)


def refuse_token_then_fail_once(
    old_token: str, answers: list[int], asked: list[str] | None = None
) -> Callable:
    """A route handler between the page and an API: a request still bearing
    `old_token` gets 401 token_expired (the page must renew and ask again),
    the first one after that 503 unavailable, and the rest reach the real
    server. Each answer's status goes into `answers`, each URL into `asked`."""

    def handle(route) -> None:
        if asked is not None:
            asked.append(route.request.url)
        if route.request.headers.get("authorization") == f"Bearer {old_token}":
            answers.append(401)
            route.fulfill(status=401, json={"error": "Token expired", "code": "token_expired"})
        elif 503 not in answers:
            answers.append(503)
            route.fulfill(status=503, json={"error": "Service unavailable", "code": "unavailable"})
        else:
            answers.append(200)
            route.continue_()

    return handle
