"""The local stack (`python -m local`) started as a process, as a person runs it,
on ephemeral ports with its data in a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.servers import running_stack

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory) -> Iterator[dict]:
    """URLs of a running local stack (keys of .aurora/local.json)."""
    with running_stack(tmp_path_factory.mktemp("aurora")) as urls:
        yield urls


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory) -> Iterator[dict]:
    """A stack started with `--redis-cluster` (AURORA_REDIS_CLUSTER=1)."""
    with running_stack(tmp_path_factory.mktemp("aurora-cluster"), AURORA_REDIS_CLUSTER="1") as urls:
        yield urls


@pytest.fixture(scope="module")
def small_window_stack(tmp_path_factory) -> Iterator[dict]:
    """A stack of its own whose rooms keep only 5 messages for resume (so a
    short absence outruns the window), whose resends are deduplicated for 2 s
    only (so it also outruns that), whose download links live 5 s (so a page
    outlives them), and with no practical rate or frame limit (so tests can
    write history fast)."""
    data_dir = tmp_path_factory.mktemp("aurora-small-window")
    small = {"RESUME_WINDOW": "5", "IDEMPOTENCY_TTL_SECONDS": "2", "RATE_LIMIT_MESSAGES": "10000"}
    small |= {"USER_MESSAGES_PER_SECOND": "10000", "USER_MESSAGE_BURST": "10000"}
    small |= {"INBOUND_FRAMES_PER_SECOND": "10000", "INBOUND_FRAME_BURST": "10000"}
    small |= {"ATTACHMENT_URL_TTL_SECONDS": "5"}
    with running_stack(data_dir, **small) as urls:
        yield urls


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(browser: Browser, local_stack: dict) -> Iterator[Callable[[], Page]]:
    """Pages on the frontend, each in its own context (a browser of its own) or
    `beside` another page (a second tab), with Playwright's context options
    (viewport, color_scheme…); fails the test on page errors."""
    from playwright.sync_api import expect

    from tests.support.browser import WAIT_MS

    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_(beside: Page | None = None, **context_options: Any) -> Page:
        if beside:
            context = beside.context
        else:
            context = browser.new_context(**context_options)
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


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """Where the screens are saved: `AURORA_SCREENSHOTS`, else a temporary folder."""
    folder = os.environ.get("AURORA_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
