"""The local stack (`python -m local`) started as a process, as a person runs it,
on ephemeral ports with its data in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

from local.servers import free_port
from tests.conftest import ROOT


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory) -> Iterator[dict]:
    """URLs of a running local stack (keys of .aurora/local.json)."""
    with running_stack(tmp_path_factory.mktemp("aurora")) as urls:
        yield urls


@contextmanager
def running_stack(data_dir: Path, **settings: str) -> Iterator[dict]:
    """Run `python -m local` with its data in `data_dir`, `settings` (names of
    environment variables) on top of the tests' defaults."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MONGO_URL")}
    env |= {"BCRYPT_ROUNDS": "4", "AURORA_LOCAL_SCHEDULE_SECONDS": "0.5"}
    env |= {"REGISTRATIONS_PER_IP": "1000"}  # every test registers from 127.0.0.1
    env |= settings
    args = [
        sys.executable, "-m", "local",
        "--api-port", str(free_port()),
        "--ws-port", str(free_port()),
        "--data-dir", str(data_dir),
    ]  # fmt: skip
    log = open(data_dir / "stack.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    state = data_dir / "local.json"
    deadline = time.monotonic() + 90
    urls = None
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists():
            urls = json.loads(state.read_text())
            try:
                import httpx

                if httpx.get(urls["api_url"] + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    else:
        process.kill()
        log.close()
        pytest.fail("local stack did not start:\n" + (data_dir / "stack.log").read_text()[-4000:])
    urls["data_dir"] = str(data_dir)
    try:
        yield urls
    finally:
        _stop(process, urls)
        log.close()


def _stop(process: subprocess.Popen, urls: dict) -> None:
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
    survivors = [name for name, pid in urls["pids"].items() if name != "local" and _alive(pid)]
    for name in survivors:
        os.kill(urls["pids"][name], signal.SIGKILL)
    assert not survivors, f"SIGTERM left these children of the local stack running: {survivors}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def small_window_stack(tmp_path_factory) -> Iterator[dict]:
    """A stack of its own whose rooms keep only 5 messages for resume (so a
    short absence outruns the window), whose resends are deduplicated for 2 s
    only (so it also outruns that), whose download links live 5 s (so a page
    outlives them), and with no practical rate limit (so tests can write
    history fast)."""
    data_dir = tmp_path_factory.mktemp("aurora-small-window")
    small = {"RESUME_WINDOW": "5", "IDEMPOTENCY_TTL_SECONDS": "2", "RATE_LIMIT_MESSAGES": "10000"}
    small |= {"ATTACHMENT_URL_TTL_SECONDS": "5"}
    with running_stack(data_dir, **small) as urls:
        yield urls


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.browser_support import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_page(browser: Browser, local_stack: dict) -> Iterator[Callable[[], Page]]:
    """Pages on the frontend, each in its own context (a browser of its own) or
    `beside` another page (a second tab); fails the test on page errors."""
    from playwright.sync_api import expect

    from tests.e2e.browser_support import WAIT_MS

    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_(beside: Page | None = None) -> Page:
        if beside:
            context = beside.context
        else:
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
