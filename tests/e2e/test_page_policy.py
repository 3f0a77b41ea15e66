"""The page's Content-Security-Policy, sent as a header by the local stack and
enforced by Chromium: never framed, and connecting only to the page's own
origin, the API, the fan-out and the attachments' S3."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support.browser import WAIT_MS


@pytest.fixture
def elsewhere(local_stack) -> Iterator[str]:
    """Another origin on this machine, answering every GET: a page that frames
    the chat at `/frame`, and 200 to anything else."""
    frontend = local_stack["frontend_url"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f'<iframe src="{frontend}"></iframe>' if self.path == "/frame" else "ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}


def test_the_page_is_served_with_its_policy_as_a_header(local_stack):
    page = httpx.get(local_stack["frontend_url"])
    policy = directives(page.headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert set(policy["connect-src"]) == {
        "'self'",
        local_stack["api_url"],
        local_stack["ws_url"],
        local_stack["ws_url"].replace("ws://", "http://", 1),  # its /healthz
        local_stack["s3_public_url"],
    }


CONNECT = """async (url) => {
    const violations = [];
    document.addEventListener("securitypolicyviolation",
        (e) => violations.push(e.effectiveDirective));
    let reached = true;
    try { await fetch(url, { mode: "no-cors", cache: "no-store" }); } catch { reached = false; }
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { reached, violations };
}"""


OPEN_SOCKET = """(url) => new Promise((resolve) => {
    const violations = [];
    document.addEventListener("securitypolicyviolation",
        (e) => violations.push(e.effectiveDirective));
    let socket;
    try { socket = new WebSocket(url); } catch { resolve({ opened: false, violations }); return; }
    // Opened is enough: the server then waits for an auth frame.
    socket.onopen = () => { socket.close(); resolve({ opened: true, violations }); };
    socket.onerror = () => setTimeout(() => resolve({ opened: false, violations }), 50);
})"""


def test_the_browser_refuses_a_connection_to_another_origin_and_allows_the_stacks(
    browser, local_stack, elsewhere
):
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        page.goto(local_stack["frontend_url"])
        assert page.evaluate(CONNECT, f"{elsewhere}/exfiltrate") == {
            "reached": False,
            "violations": ["connect-src"],
        }
        # The page probes the fan-out's /healthz to tell offline from down.
        fanout_health = local_stack["ws_url"].replace("ws://", "http://", 1) + "/healthz"
        for allowed in (f"{local_stack['api_url']}/api/health", fanout_health):
            assert page.evaluate(CONNECT, allowed) == {"reached": True, "violations": []}
        assert page.evaluate(OPEN_SOCKET, local_stack["ws_url"]) == {
            "opened": True,
            "violations": [],
        }
    finally:
        context.close()


def test_another_site_cannot_frame_the_page(browser, local_stack, elsewhere):
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        page.goto(f"{elsewhere}/frame")
        page.wait_for_load_state("load")
        (framed,) = page.main_frame.child_frames
        # Chromium replaces a refused frame with its error page: the chat never runs there.
        assert framed.url != local_stack["frontend_url"]
        assert framed.evaluate("document.querySelector('#username')") is None
    finally:
        context.close()
