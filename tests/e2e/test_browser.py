"""The browser frontend driven by a real Chromium (Debian's) against the local stack."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.support.browser import (
    PASSWORD,
    WAIT_MS,
    header,
    hearing_storage_late,
    me,
    message,
    register,
    route_through_lines,
    say,
    session_token,
    stored_session,
    unique,
    wait_for_lines,
    wait_until,
)
from tests.support.files import png


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
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0


def test_the_token_never_travels_in_a_websocket_url(open_page, local_stack: dict) -> None:
    """The page authenticates its WebSocket with the subprotocol, not the URL,
    and the server's answer names only `aurora.v1`."""
    page = open_page()
    urls: list[str] = []
    page.on("websocket", lambda ws: urls.append(ws.url))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    offered: list[str] = []
    chosen: list[str] = []
    cdp.on(
        "Network.webSocketWillSendHandshakeRequest",
        lambda e: offered.append(header(e["request"]["headers"], "Sec-WebSocket-Protocol")),
    )
    cdp.on(
        "Network.webSocketHandshakeResponseReceived",
        lambda e: chosen.append(header(e["response"]["headers"], "Sec-WebSocket-Protocol")),
    )
    register(page, unique("dave"))

    token = session_token(page)
    assert me(local_stack, token).status_code == 200  # a real token, which…
    assert urls, "the page opened no WebSocket"
    for url in urls:  # …never appears in a URL
        assert token not in url and "token" not in url.lower(), url
    assert offered == [f"aurora.v1, bearer.{token}"] * len(urls)
    assert chosen == ["aurora.v1"] * len(urls)


def test_messages_sent_across_a_reconnect_are_delivered_exactly_once(
    open_page, local_stack: dict
) -> None:
    """Messages sent as the connection fails, and one typed while the page
    reconnects, each show once, for sender and reader, after the reconnect: the
    one the server stored is recognised in the replay, the one it never got is
    resent with its client_id, the one typed meanwhile is sent."""
    alice, bob = open_page(), open_page()
    lines, new_lines = route_through_lines(alice, local_stack["ws_url"])
    register(alice, unique("alice"))
    register(bob, unique("bob"))
    first = wait_for_lines(alice, lines, 1)

    # The server stores `stored`, but its answers never reach alice…
    first.hold = True
    stored = f"answer lost {uuid.uuid4().hex}"
    say(alice, stored)
    expect(message(bob, stored)).to_have_count(1, timeout=WAIT_MS)
    # …and `lost` never reaches the server.
    first.drop = True
    lost = f"frame lost {uuid.uuid4().hex}"
    say(alice, lost)
    wait_until(alice, lambda: first.client_ids(lost), "the page did not send the message")
    for text in (stored, lost):
        expect(message(alice, text)).to_have_class(re.compile(r"\bpending\b"), timeout=WAIT_MS)

    # The line drops; the next connection stays mute until released.
    new_lines["hold"] = True
    first.cut(1012, "replica restarting")
    second = wait_for_lines(alice, lines, 2)
    queued = f"typed while reconnecting {uuid.uuid4().hex}"
    say(alice, queued)
    expect(message(alice, queued)).to_have_class(re.compile(r"\bpending\b"), timeout=WAIT_MS)
    expect(alice.locator("#status")).not_to_have_attribute("data-state", "online", timeout=WAIT_MS)

    second.release()
    expect(alice.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    for page in (alice, bob):
        for text in (queued, lost, stored):  # a second copy would come before `queued`
            expect(message(page, text)).to_have_count(1, timeout=WAIT_MS)
    expect(alice.locator("#messages .pending")).to_have_count(0, timeout=WAIT_MS)

    assert second.client_ids(stored) == []  # settled by the replay after `joined`
    assert second.client_ids(lost) == first.client_ids(lost)  # resent, same client_id
    assert len(second.client_ids(queued)) == 1


def test_log_out_revokes_the_token(open_page, local_stack: dict) -> None:
    """After Log out the page forgets the session and the server refuses its tokens."""
    page = open_page()
    register(page, unique("erin"))
    token = session_token(page)
    refresh_token = stored_session(page)["refresh_token"]
    assert me(local_stack, token).status_code == 200

    with page.expect_response(lambda r: r.url.endswith("/api/auth/logout")) as logout:
        page.click("#logout")
    assert logout.value.status == 200
    expect(page.locator("#auth-view")).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0

    refused = me(local_stack, token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
    refresh = httpx.post(
        local_stack["api_url"] + "/api/auth/refresh",
        json={"refresh_token": refresh_token},
        timeout=10,
    )
    assert refresh.status_code == 401


def refresh_tokens_used(page: Page) -> list[str]:
    """The refresh token of each `POST /api/auth/refresh` the page makes."""
    used: list[str] = []
    page.on(
        "request",
        lambda r: (
            used.append(json.loads(r.post_data)["refresh_token"])
            if r.url.endswith("/api/auth/refresh")
            else None
        ),
    )
    return used


def test_a_4001_close_renews_the_session_and_reconnects(open_page, local_stack: dict) -> None:
    """Closed with 4001 (token expired), the page refreshes once and reconnects
    with the new token, without going back to sign-in."""
    page = open_page()
    lines, _ = route_through_lines(page, local_stack["ws_url"])
    register(page, unique("frank"))
    before = stored_session(page)
    used = refresh_tokens_used(page)

    wait_for_lines(page, lines, 1).cut(4001, "token expired")
    second = wait_for_lines(page, lines, 2)
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)

    assert used == [before["refresh_token"]]
    token = session_token(page)
    assert token != before["token"]
    assert me(local_stack, token).status_code == 200
    assert [f["type"] for f in second.from_server[:2]] == ["ready", "joined"]
    expect(page.locator("#chat-view")).to_be_visible()


def test_a_long_open_page_refreshes_its_token_before_it_expires(
    open_page, local_stack: dict
) -> None:
    """Near the end of the access token's lifetime the page refreshes it and
    hands the new one to its open connection, which stays open."""
    page = open_page()
    page.clock.install()
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=WAIT_MS)
    lines, _ = route_through_lines(page, local_stack["ws_url"])
    register(page, unique("grace"))
    before = session_token(page)
    used = refresh_tokens_used(page)

    with page.expect_response(lambda r: r.url.endswith("/api/auth/refresh")) as refreshed:
        page.clock.fast_forward("23:00:00")  # of a 24 h token
    assert refreshed.value.status == 200
    line = wait_for_lines(page, lines, 1)
    deadline = time.monotonic() + WAIT_MS / 1000
    while [f["type"] for f in line.from_server].count("ready") < 2:  # the answer to `auth`
        assert time.monotonic() < deadline, "the connection was not re-authenticated"
        page.wait_for_timeout(50)

    (auth,) = [f for f in line.from_page if f.get("type") == "auth"]
    assert auth["token"] == session_token(page) != before
    assert len(used) == 1 and len(lines) == 1  # the same connection, extended
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)


def test_too_many_connections_is_explained(open_page, local_stack: dict) -> None:
    """A 4029 close shows its reason instead of silently reconnecting."""
    page = open_page()
    lines, _ = route_through_lines(page, local_stack["ws_url"])
    register(page, unique("heidi"))
    wait_for_lines(page, lines, 1).cut(4029, "too many connections for this user")
    expect(page.locator("#notice")).to_contain_text(
        "too many connections for this user", timeout=WAIT_MS
    )
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting", timeout=WAIT_MS)


def test_messages_over_the_rate_limit_are_sent_later_in_order(open_page) -> None:
    """Typed faster than the server's rate limit, messages are all delivered once,
    in the order typed, after a notice that says why some waited."""
    page = open_page()
    register(page, unique("ivan"))
    burst = [f"burst {i} {uuid.uuid4().hex}" for i in range(6)]  # the limit is 3 a second
    for text in burst:
        say(page, text)

    expect(page.locator("#notice")).to_contain_text("sending too fast", timeout=WAIT_MS)
    expect(page.locator("#messages .pending")).to_have_count(0, timeout=WAIT_MS)
    for text in burst:  # each one stored: it carries its message id
        expect(message(page, text)).to_have_attribute("data-id", re.compile(r"^\d+-\d+$"))
    shown = page.locator("#messages .message .text").all_text_contents()
    assert [t for t in shown if t in burst] == burst


def attach(page: Page, name: str, mime_type: str, content: bytes) -> None:
    page.set_input_files(
        "#attach-input", files=[{"name": name, "mimeType": mime_type, "buffer": content}]
    )


def attach_and_wait(page: Page, name: str, mime_type: str, content: bytes) -> None:
    attach(page, name, mime_type, content)
    chip = page.locator("#staged .chip").filter(has_text=name)
    expect(chip).to_have_attribute("data-state", "ready", timeout=WAIT_MS)


def test_an_image_one_user_attaches_shows_in_other_pages(open_page) -> None:
    """An attached PNG is uploaded to S3 and shows as a loaded image for the
    sender, for a reader online at the time and for one who joins later (replay)."""
    alice, bob = open_page(), open_page()
    alice_name = unique("alice")
    register(alice, alice_name)
    register(bob, unique("bob"))

    name = f"{unique('dot')}.png"
    attach_and_wait(alice, name, "image/png", png(3, 2))
    text = f"a picture {uuid.uuid4().hex}"
    say(alice, text)
    expect(alice.locator("#staged .chip")).to_have_count(0)

    carol = open_page()
    register(carol, unique("carol"))  # joins after the message: gets it replayed
    for page in (alice, bob, carol):
        sent = message(page, text)
        expect(sent.locator(".user")).to_have_text(alice_name, timeout=WAIT_MS)
        image = sent.locator(".attachments img")
        expect(image).to_have_attribute("alt", name, timeout=WAIT_MS)
        expect(image).to_have_js_property("naturalWidth", 3, timeout=WAIT_MS)
        expect(image).to_have_js_property("naturalHeight", 2)
    expect(alice.locator("#messages .pending")).to_have_count(0)


def test_a_file_that_is_not_an_image_shows_as_a_link_that_downloads_it(
    open_page, local_stack: dict
) -> None:
    """A PDF sent without text shows, for another user, as a link to the file
    storage with its name and size, in the tab order; Enter on it downloads
    the same bytes."""
    alice, bob = open_page(), open_page()
    alice_name = unique("alice")
    register(alice, alice_name)
    register(bob, unique("bob"))

    name = f"{unique('report')}.pdf"
    content = b"%PDF-1.4 a tiny report\n"
    attach_and_wait(alice, name, "application/pdf", content)
    alice.click("#send")  # no text: the attachment alone

    sent = bob.locator("#messages .message").filter(
        has=bob.locator(".attachment-name", has_text=name)
    )
    expect(sent.locator(".user")).to_have_text(alice_name, timeout=WAIT_MS)
    link = sent.locator("a.attachment-file")
    expect(link).to_have_text(f"{name}{len(content)} B")
    storage = re.compile("^" + re.escape(local_stack["s3_url"]))
    expect(link).to_have_attribute("href", storage)
    expect(sent.locator("img")).to_have_count(0)
    expect(link).to_have_js_property("tabIndex", 0)  # in the tab order
    link.focus()
    with bob.expect_download() as download:
        bob.keyboard.press("Enter")
    assert download.value.suggested_filename == name
    assert Path(download.value.path()).read_bytes() == content


def frames_sent(page: Page) -> list[dict]:
    """Every frame the page sends on any of its WebSockets."""
    frames: list[dict] = []
    page.on(
        "websocket", lambda ws: ws.on("framesent", lambda data: frames.append(json.loads(data)))
    )
    return frames


def sent_messages(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f.get("type") == "message"]


def test_a_refused_file_shows_the_apis_error_and_sends_nothing(open_page, local_stack) -> None:
    """A file type the API does not allow is refused with the API's own words:
    nothing is staged, and Send then sends no message with it."""
    page = open_page()
    frames = frames_sent(page)
    register(page, unique("mallory"))
    refusal = httpx.post(
        local_stack["api_url"] + "/api/attachments",
        json={"filename": "tool.exe", "content_type": "application/x-msdownload", "size": 4},
        headers={"Authorization": f"Bearer {session_token(page)}"},
        timeout=10,
    )
    assert refusal.status_code == 400, refusal.text

    attach(page, "tool.exe", "application/x-msdownload", b"MZ\x90\x00")
    expect(page.locator("#attach-error")).to_have_text(
        f"tool.exe: {refusal.json()['error']}", timeout=WAIT_MS
    )
    expect(page.locator("#staged .chip")).to_have_count(0)
    page.click("#send")  # blank text, nothing staged: nothing to send

    after = f"after the refusal {uuid.uuid4().hex}"
    say(page, after)
    expect(message(page, after)).to_have_attribute("data-id", re.compile(r"^\d+-\d+$"))
    assert [(m["text"], "attachments" in m) for m in sent_messages(frames)] == [(after, False)]
    expect(page.locator("#messages .message.own")).to_have_count(1)


def test_nothing_is_sent_while_a_file_uploads_nor_after_it_fails(open_page, local_stack) -> None:
    """While its file uploads a message cannot be sent; when the upload fails
    the error says so, the file is dropped and no message has gone out."""
    page = open_page()
    frames = frames_sent(page)
    register(page, unique("niaj"))
    uploads: list = []

    def hold_uploads(route) -> None:  # downloads (replayed images) go through
        if route.request.method == "POST":
            uploads.append(route)
        else:
            route.continue_()

    page.route(re.compile("^" + re.escape(local_stack["s3_url"])), hold_uploads)

    page.fill("#message-input", "this needs the file")
    attach(page, "notes.txt", "text/plain", b"some notes\n")
    wait_until(page, lambda: uploads, "the page did not upload the file")
    expect(page.locator("#staged .chip")).to_have_attribute("data-state", "uploading")
    expect(page.locator("#send")).to_be_disabled()
    page.press("#message-input", "Enter")

    uploads[0].abort()  # as an unreachable S3 would
    expect(page.locator("#attach-error")).to_have_text(
        "notes.txt: Cannot reach file storage. Try again.", timeout=WAIT_MS
    )
    expect(page.locator("#staged .chip")).to_have_count(0)
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#message-input")).to_have_value("this needs the file")
    assert sent_messages(frames) == []
    expect(page.locator("#messages .message.own")).to_have_count(0)


def test_tabs_refreshing_at_once_share_the_session(open_page, local_stack: dict) -> None:
    """Two tabs whose tokens are refused (4001) at the same moment both renew:
    one refreshes, the other adopts its rotated session instead of presenting
    the same refresh token again (which would end the session), and both
    reconnect."""
    first = open_page()
    lines, _ = route_through_lines(first.context, local_stack["ws_url"])  # every tab's
    used = refresh_tokens_used(first)
    register(first, unique("judy"))
    second = open_page(beside=first)  # signed in already: the session is the browser's
    used += refresh_tokens_used(second)
    expect(second.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    before = stored_session(first)

    for line in (wait_for_lines(first, lines, 1), wait_for_lines(first, lines, 2)):
        line.cut(4001, "token expired")
    for page in (first, second):  # one after the other: a refresh waits for the other's
        expect(page.locator("#status")).to_have_attribute(
            "data-state", "online", timeout=2 * WAIT_MS
        )
    assert len(lines) == 4  # each tab reconnected once

    after = stored_session(first)
    assert stored_session(second) == after
    assert before["refresh_token"] in used and len(used) == len(set(used))  # none twice
    assert me(local_stack, after["token"]).status_code == 200  # the session lives on


def test_signing_in_or_out_in_one_tab_does_so_in_every_tab(open_page, local_stack) -> None:
    """A login in one tab signs in the browser's other tabs; Log out in any tab
    signs them all out and closes their connections."""
    first = open_page()
    second = open_page(beside=first)
    sockets: list = []
    first.on("websocket", lambda ws: sockets.append(ws))
    register(first, unique("kim"))
    expect(second.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    token = session_token(second)

    second.click("#logout")
    wait_until(first, lambda: all(ws.is_closed() for ws in sockets), "first kept its socket")
    for page in (first, second):
        expect(page.locator("#auth-view")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    expect(first.locator("#auth-error")).to_have_text("You were signed out in another tab.")
    assert first.evaluate("localStorage.length") == 0
    # The page forgets the session at once, then revokes it on the server.
    wait_until(first, lambda: me(local_stack, token).status_code == 401, "the token still works")


def test_a_tab_that_storage_tells_late_still_says_it_was_signed_out(open_page, local_stack) -> None:
    """Chromium tells the other tabs of a storage write late, so the server's
    close (4001) can reach a tab before it: the refresh it then tries is
    refused, and the tab still says it was signed out in another tab."""
    first = open_page()
    hold_storage_events = hearing_storage_late(first)
    second = open_page(beside=first)
    register(first, unique("lee"))
    expect(second.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    hold_storage_events()

    second.click("#logout")
    expect(first.locator("#auth-view")).to_be_visible(timeout=WAIT_MS)
    expect(first.locator("#auth-error")).to_have_text("You were signed out in another tab.")
    assert first.evaluate("localStorage.length") == 0
