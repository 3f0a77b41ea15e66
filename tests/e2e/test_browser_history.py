"""The browser's use of the history API, in Debian's Chromium, against a stack
of its own whose resume window is 5 messages: scrollback, filling the gap a
long absence leaves, search and its further pages, and attachments in a long
history (images fetched when scrolled to, file links renewed once they may
have expired)."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from websockets.sync.client import connect

from aurora.stream import parse_id
from tests.support.browser import (
    PASSWORD,
    WAIT_MS,
    message,
    refuse_token_then_fail_once,
    register,
    route_through_lines,
    say,
    session_token,
    unique,
    wait_for_lines,
    wait_until,
)
from tests.support.files import png, upload

LONG_MS = 3 * WAIT_MS  # the drain, two cores and other sessions
File = tuple[str, str, bytes]  # name, content type, bytes


@pytest.fixture(scope="module")
def local_stack(small_window_stack: dict) -> dict:
    """The pages of this module use the small-window stack."""
    return small_window_stack


def login(api: str) -> str:
    creds = {"username": unique("writer"), "password": PASSWORD}
    assert httpx.post(f"{api}/api/auth/register", json=creds, timeout=10).status_code == 200
    return httpx.post(f"{api}/api/auth/login", json=creds, timeout=10).json()["token"]


def write(stack: dict, texts: list[str], files: dict[str, File] | None = None) -> list[str]:
    """Send `texts` to general over the WebSocket as a new user (the message of
    a text in `files` with that file attached); their ids, once the drain has
    stored every one."""
    token = login(stack["api_url"])
    attached = {
        text: [upload(stack["api_url"], token, *file)["attachment"]]
        for text, file in (files or {}).items()
    }
    # The sync client: Playwright's sync API already runs an event loop here.
    with connect(stack["ws_url"], subprotocols=["aurora.v1", f"bearer.{token}"]) as ws:
        assert json.loads(ws.recv(10))["type"] == "ready"
        ws.send(json.dumps({"type": "join", "room": "general"}))
        assert json.loads(ws.recv(10))["type"] == "joined"
        for text in texts:
            frame = {"type": "message", "room": "general", "text": text}
            if text in attached:
                frame["attachments"] = attached[text]
            ws.send(json.dumps(frame))
        sent: dict[str, str] = {}
        while len(sent) < len(texts):
            frame = json.loads(ws.recv(10))
            if frame["type"] == "presence":  # who else is in general: not ours to check
                continue
            assert frame["type"] in ("message", "ack"), frame
            if frame["type"] == "message" and frame["text"] in texts:
                sent[frame["text"]] = frame["id"]
    ids = [sent[text] for text in texts]
    auth = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + LONG_MS / 1000
    while True:
        page = httpx.get(
            f"{stack['api_url']}/api/rooms/general/messages",
            params={"limit": 1},
            headers=auth,
            timeout=10,
        ).json()
        if page["messages"] and parse_id(page["messages"][0]["id"]) >= parse_id(ids[-1]):
            return ids
        assert time.monotonic() < deadline, "the drain did not store the messages"
        time.sleep(0.2)


def stored_ids(stack: dict, token: str) -> list[str]:
    """Every stored message id of general, oldest first (the API, page by page)."""
    ids: list[str] = []
    params: dict[str, str | int] = {"after": "0-0", "limit": 100}
    while True:
        page = httpx.get(
            f"{stack['api_url']}/api/rooms/general/messages",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        ids += [m["id"] for m in page["messages"]]
        if not page["next_after"]:
            return ids
        params["after"] = page["next_after"]


def shown_ids(page: Page) -> list[str]:
    return page.locator("#messages .message[data-id]").evaluate_all(
        "items => items.map(item => item.dataset.id)"
    )


def assert_in_id_order_once(ids: list[str]) -> None:
    keys = [parse_id(i) for i in ids]
    assert keys == sorted(set(keys)), "messages out of id order, or shown twice"


def settled(page: Page) -> None:
    """A few frames gone by: what the page does over its next frames is done."""
    page.evaluate(
        "() => new Promise((done) => { let frames = 5;"
        " const tick = () => (frames-- > 0 ? requestAnimationFrame(tick) : done());"
        " tick(); })"
    )


def place(item) -> dict:
    """Where `item` is on the screen (what the reader sees move), with its
    list's place and scroll to tell why, if it moved."""
    return item.evaluate(
        "item => { const list = item.closest('ol, ul');"
        " return { on_screen: item.getBoundingClientRect().top,"
        " list_top: list.getBoundingClientRect().top, scroll_top: list.scrollTop,"
        " items: list.children.length }; }"
    )


# On a phone the bar above the list wraps its status under its button, so
# each status that comes or goes changes the bar's height.
@pytest.mark.parametrize(
    "viewport",
    [{"width": 1280, "height": 800}, {"width": 360, "height": 740}],
    ids=["desktop", "phone"],
)
def test_scrolling_up_loads_older_messages_once_each_in_order(
    open_page, local_stack, viewport
) -> None:
    """Scrolling to the top reads the page before, keeps what the reader
    looks at in place, shows each stored message once, in id order, and says
    when it has reached the beginning; Load older messages does the same."""
    texts = [f"old {i} {uuid.uuid4().hex}" for i in range(120)]  # over two pages of 50
    write(local_stack, texts)
    page = open_page(viewport=viewport)
    register(page, unique("reader"))
    expect(message(page, texts[-1])).to_have_count(1, timeout=WAIT_MS)
    status = page.locator("#history-status")
    beginning = "This is the beginning of #general."
    messages = page.locator("#messages .message")
    # The reader starts once the newest page is in and has settled (it goes
    # in over a few frames, scrolled to its end as it does).
    expect(messages).to_have_count(50, timeout=WAIT_MS)
    settled(page)
    steps, steady = 0, False
    while status.text_content() != beginning:
        count = messages.count()
        if not steps % 2:  # the reader scrolls to the top…
            page.eval_on_selector("#messages", "list => { list.scrollTop = 0; }")
        # …or uses the button: either way, the message at the top of the view
        # (its first with its bottom below the list's top) stays where it is.
        first = page.evaluate_handle(
            "() => { const list = document.getElementById('messages');"
            " const top = list.getBoundingClientRect().top;"
            " return Array.from(list.querySelectorAll('.message'))"
            ".find((m) => m.getBoundingClientRect().bottom > top); }"
        )
        top = place(first)
        if steps % 2:
            page.locator("#load-older").click()
        wait_until(
            page,
            lambda count=count: messages.count() > count or status.text_content() == beginning,
            "no older page came",
        )
        if messages.count() > count:  # the message that was at the top stays where it was
            page.wait_for_timeout(100)
            now = place(first)
            moved = now["on_screen"] - top["on_screen"]
            assert abs(moved) < 2, (steps, moved, top, now)
            steady = True
        steps += 1
        assert steps < 20, "scrollback never reached the beginning"

    assert steady
    ids = shown_ids(page)
    assert_in_id_order_once(ids)
    assert ids == stored_ids(local_stack, session_token(page))  # every one, once
    shown = page.locator("#messages .message .text").all_text_contents()
    assert [t for t in shown if t in texts] == texts


def test_far_back_the_list_keeps_a_window_and_comes_back_to_the_newest(
    open_page, local_stack
) -> None:
    """Scrolled 600 messages back, the list holds at most about 500 (the
    newest are dropped); a message arriving meanwhile waits; scrolling down
    reads the dropped ones again, then it; up again, *Jump to newest* goes
    straight back, with a reaction given to a message that waited meanwhile.
    Every message once, in id order, all along; every one reached on the way
    up and on the way down."""
    texts = [f"long {i} {uuid.uuid4().hex}" for i in range(600)]
    ids = write(local_stack, texts)
    page = open_page()
    register(page, unique("deep"))
    expect(message(page, texts[-1])).to_have_count(1, timeout=WAIT_MS)
    jump = page.get_by_role("button", name="Jump to newest")

    def scroll_until(shown: str, to: str) -> set[str]:
        """Scroll to `to` until the message of id `shown` shows; every id the
        list held meanwhile. Reached or not is read from the same look at the
        list as the ids: a page that lands between two looks would otherwise
        end the scroll with its messages never counted."""
        seen: set[str] = set()
        for _ in range(60):
            now = shown_ids(page)
            assert_in_id_order_once(now)
            assert len(now) <= 560, "the list is a window"
            seen.update(now)
            if shown in now:
                return seen
            page.eval_on_selector("#messages", f"list => {{ list.scrollTop = {to}; }}")
            page.wait_for_timeout(150)
        raise AssertionError(f"never reached {shown}")

    def between(first: str, last: str, among: set[str] | list[str]) -> set[str]:
        return {i for i in among if parse_id(first) <= parse_id(i) <= parse_id(last)}

    up = scroll_until(ids[0], "0")
    expect(message(page, texts[-1])).to_have_count(0)  # dropped on the way up
    assert between(ids[0], ids[-1], up) == set(ids)  # each reached
    live = f"while far back {uuid.uuid4().hex}"
    [live_id] = write(local_stack, [live])
    expect(jump).to_be_visible()
    expect(message(page, live)).to_have_count(0)

    down = scroll_until(live_id, "list.scrollHeight")
    expect(message(page, texts[0])).to_have_count(0)  # dropped on the way down
    stored = stored_ids(local_stack, session_token(page))
    assert between(ids[0], live_id, down) == between(ids[0], live_id, stored)

    scroll_until(ids[100], "0")
    expect(message(page, live)).to_have_count(0)
    # A message that arrives now waits, and takes the reactions given meanwhile.
    waiting = f"waiting {uuid.uuid4().hex}"
    [waiting_id] = write(local_stack, [waiting])
    reacted = httpx.put(
        f"{local_stack['api_url']}/api/rooms/general/messages/{waiting_id}/reactions/👍",
        headers={"Authorization": f"Bearer {session_token(page)}"},
        timeout=10,
    )
    assert reacted.status_code == 200
    wait_until(page, lambda: held_reactions(page, waiting_id), "the reaction never came")
    expect(message(page, waiting)).to_have_count(0)
    jump.click()
    expect(message(page, waiting)).to_have_count(1, timeout=WAIT_MS)
    expect(message(page, live)).to_have_count(1)
    expect(message(page, waiting).get_by_role("button", name="👍 1")).to_be_visible()
    ids = shown_ids(page)
    assert_in_id_order_once(ids)
    assert len(ids) <= 560


def held_reactions(page: Page, message_id: str) -> int:
    """How many reactions the page holds for a message it keeps aside while
    the reader is far back (the list's end is behind the newest)."""
    return page.evaluate(
        """async (id) => {
          const { active } = await import("./rooms.js");
          const held = active().tail ? active().tail.held.find((frame) => frame.id === id) : null;
          return held && Array.isArray(held.reactions) ? held.reactions.length : 0;
        }""",
        message_id,
    )


def test_a_long_absence_is_filled_in_order_without_duplicates(open_page, local_stack) -> None:
    """A page that was offline while more messages were sent than the resume
    window holds shows, once back, every one it missed, once, in id order:
    those beyond the window read from the history API. A reader who was at
    the newest is still there once they have gone in above it."""
    page = open_page()
    lines, new_lines = route_through_lines(page, local_stack["ws_url"])
    register(page, unique("away"))
    before = [f"before {i} {uuid.uuid4().hex}" for i in range(3)]
    write(local_stack, before)
    expect(message(page, before[-1])).to_have_count(1, timeout=WAIT_MS)
    last_seen = shown_ids(page)[-1]
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/messages?" in r.url else None)

    # The line drops; the next connection stays mute while 120 messages are
    # sent and stored (the window keeps 5 of them, a gap page holds 100).
    new_lines["hold"] = True
    wait_for_lines(page, lines, 1).cut(1012, "replica restarting")
    second = wait_for_lines(page, lines, 2)
    new_lines["hold"] = False  # a slow machine's replacement connection goes through
    missed = [f"missed {i} {uuid.uuid4().hex}" for i in range(120)]
    write(local_stack, missed)
    second.release()

    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    joins = [f for line in lines[1:] for f in line.from_server if f["type"] == "joined"]
    assert joins and joins[0]["recovered"] is False
    for text in (missed[0], missed[99], missed[100], missed[-1]):
        expect(message(page, text)).to_have_count(1, timeout=LONG_MS)
    expect(page.locator("#history-status")).to_have_text("", timeout=LONG_MS)

    ids = shown_ids(page)
    assert_in_id_order_once(ids)
    stored = stored_ids(local_stack, session_token(page))
    assert ids[ids.index(last_seen) :] == stored[stored.index(last_seen) :]
    shown = page.locator("#messages .message .text").all_text_contents()
    assert [t for t in shown if t in missed] == missed
    assert any(f"after={last_seen}" in url for url in asked)
    below = "list => list.scrollHeight - list.scrollTop - list.clientHeight"
    wait_until(page, lambda: page.locator("#messages").evaluate(below) < 2, "not at the newest")


def test_a_send_stored_while_the_page_was_away_is_not_sent_again(open_page, local_stack) -> None:
    """The server stored a message whose ack never reached the page, and the
    page then stayed away longer than the resume window and the resend
    deduplication: back online it finds the message, by its client_id, in the
    gap it reads, and settles it instead of sending it again (which would
    store it twice)."""
    page = open_page()
    lines, new_lines = route_through_lines(page, local_stack["ws_url"])
    register(page, unique("unsure"))
    before = f"before {uuid.uuid4().hex}"
    write(local_stack, [before])
    expect(message(page, before)).to_have_count(1, timeout=WAIT_MS)

    first = wait_for_lines(page, lines, 1)
    first.hold = True  # what the server answers (ack, broadcast) never arrives
    text = f"stored once {uuid.uuid4().hex}"
    say(page, text)
    wait_until(page, lambda: first.client_ids(text), "the page did not send the message")
    new_lines["hold"] = True
    first.cut(1012, "replica restarting")
    second = wait_for_lines(page, lines, 2)
    new_lines["hold"] = False
    write(local_stack, [f"meanwhile {i} {uuid.uuid4().hex}" for i in range(8)])  # window: 5
    time.sleep(3)  # IDEMPOTENCY_TTL_SECONDS is 2: a resend now would be stored again
    second.release()

    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    expect(message(page, text)).to_have_count(1, timeout=LONG_MS)
    expect(message(page, text)).not_to_have_class(re.compile("pending"), timeout=LONG_MS)
    assert second.client_ids(text) == []  # not sent again
    token = session_token(page)
    time.sleep(1.5)  # a resend would be stored by the drain within this
    texts = [
        m["text"]
        for m in httpx.get(
            f"{local_stack['api_url']}/api/search",
            params={"room": "general", "q": text},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["messages"]
    ]
    assert texts == [text]


def test_search_finds_a_message_ignoring_case_and_says_when_nothing_matches(
    open_page, local_stack
) -> None:
    """Search shows the room's stored messages that contain the words, in any
    case, as text; a search that matches nothing says so; a failing one says why."""
    page = open_page()
    register(page, unique("seeker"))
    word = f"Zebra{uuid.uuid4().hex[:8]}"
    text = f"<b>the {word} crossing</b>"
    say(page, text)
    expect(message(page, text)).to_have_attribute("data-id", re.compile(r"^\d+-\d+$"))

    results = page.locator("#search-results .message")
    deadline = time.monotonic() + LONG_MS / 1000
    while True:  # the drain stores it about a second after it was sent
        page.fill("#search-input", word.lower())
        with page.expect_response(lambda r: "/api/search?" in r.url):
            page.press("#search-input", "Enter")
        expect(page.locator("#search-status")).not_to_have_text("Searching…")
        if results.count() or time.monotonic() > deadline:
            break
        page.wait_for_timeout(300)
    expect(results).to_have_count(1)
    expect(results.locator(".text")).to_have_text(text)
    assert page.locator("#search-results b").count() == 0
    expect(page.locator("#search-status")).to_have_text(f"1 result for “{word.lower()}”.")

    nothing = f"nothing-{uuid.uuid4().hex}"
    page.fill("#search-input", nothing)
    page.press("#search-input", "Enter")
    expect(page.locator("#search-status")).to_have_text(f"No results for “{nothing}”.")
    expect(results).to_have_count(0)

    unavailable = {"error": "The query took too long", "code": "query_timeout"}
    page.route("**/api/search?*", lambda route: route.fulfill(status=503, json=unavailable))
    page.press("#search-input", "Enter")
    expect(page.locator("#search-status")).to_have_text(
        "Search failed: The query took too long", timeout=WAIT_MS
    )


def test_history_requests_renew_a_refused_token(open_page, local_stack) -> None:
    """A 401 from the history API goes through the page's refresh, and the
    request is made again with the new token; a 503 leaves a way to retry."""
    write(local_stack, [f"older {i} {uuid.uuid4().hex}" for i in range(60)])  # over a page
    page = open_page()
    register(page, unique("renew"))
    old_token = session_token(page)
    answers: list[int] = []
    page.route("**/api/rooms/general/messages?*", refuse_token_then_fail_once(old_token, answers))
    with page.expect_response(lambda r: r.url.endswith("/api/auth/refresh")) as refreshed:
        page.click("#load-older")
    assert refreshed.value.status == 200
    expect(page.locator("#history-status")).to_have_text(
        "Could not load older messages: Service unavailable", timeout=WAIT_MS
    )
    assert session_token(page) != old_token
    expect(page.locator("#chat-view")).to_be_visible()

    page.click("#load-older")  # the retry
    expect(page.locator("#history-status")).not_to_have_text(
        re.compile("Could not"), timeout=WAIT_MS
    )
    assert answers[:3] == [401, 503, 200]


def test_more_results_pages_back_through_a_search_to_its_end(open_page, local_stack) -> None:
    """More results adds the next page of a search below the last result (the
    API's `before` cursor): every match once, newest first, then it goes. A 401
    on the way is renewed and asked again; a 503 is shown and More results
    stays, to try again."""
    word = f"Paged{uuid.uuid4().hex[:8]}"
    texts = [f"{word} number {i}" for i in range(70)]  # a page of 50, then 20
    ids = write(local_stack, texts)
    page = open_page()
    register(page, unique("pager"))
    status, more = page.locator("#search-status"), page.locator("#search-more")
    results = page.locator("#search-results .message .text")
    page.fill("#search-input", word)
    page.press("#search-input", "Enter")
    expect(status).to_have_text(f"The newest 50 results for “{word}”.", timeout=WAIT_MS)
    expect(results).to_have_count(50)
    expect(more).to_be_visible()

    old_token = session_token(page)
    answers: list[int] = []
    asked: list[str] = []
    page.route("**/api/search?*", refuse_token_then_fail_once(old_token, answers, asked))
    with page.expect_response(lambda r: r.url.endswith("/api/auth/refresh")) as refreshed:
        more.click()
    assert refreshed.value.status == 200
    expect(status).to_have_text("Search failed: Service unavailable", timeout=WAIT_MS)
    expect(results).to_have_count(50)  # nothing lost, nothing doubled
    expect(more).to_be_visible()

    more.click()  # the retry
    expect(status).to_have_text(f"70 results for “{word}”.", timeout=WAIT_MS)
    expect(more).to_be_hidden()
    expect(page.locator("#search-close")).to_be_focused()  # not lost with the button
    assert results.all_text_contents() == texts[::-1]
    assert answers == [401, 503, 200]
    assert all(f"before={ids[20]}" in url for url in asked)  # the oldest of the first page


def test_an_image_far_up_a_long_history_is_fetched_only_when_scrolled_to(
    open_page, local_stack
) -> None:
    """Images in loaded history are fetched when their message comes near the
    view: one just above it at once, one far up only once it is scrolled to,
    in a box that keeps its size while the image arrives."""
    far, near = f"far picture {uuid.uuid4().hex}", f"near picture {uuid.uuid4().hex}"
    far_name, near_name = f"{unique('far')}.png", f"{unique('near')}.png"
    between = [f"between {i} {uuid.uuid4().hex}" for i in range(30)]
    latest = [f"latest {i} {uuid.uuid4().hex}" for i in range(5)]  # the resume window
    files = {far: (far_name, "image/png", png(3, 2)), near: (near_name, "image/png", png(3, 2))}
    write(local_stack, [far, *between, near, *latest], files)

    page = open_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    register(page, unique("scroller"))
    expect(message(page, latest[-1])).to_have_count(1, timeout=WAIT_MS)
    # The room's newest page (read as it opens) or the next one holds both:
    # near just above the view, far 30 further up.
    page.wait_for_timeout(300)
    if message(page, far).count() == 0:
        page.click("#load-older")
    expect(message(page, far)).to_have_count(1)
    near_image = message(page, near).locator(".attachments img")
    expect(near_image).to_have_js_property("naturalWidth", 3, timeout=WAIT_MS)

    def asked_for(name: str) -> tuple[int, int]:
        """Requests for a file: (download links from the API, reads from S3)."""
        links = [u for u in requested if "/api/attachments/link?" in u and name in u]
        reads = [u for u in requested if u.startswith(local_stack["s3_url"]) and name in u]
        return len(links), len(reads)

    assert asked_for(near_name) == (1, 1)
    assert asked_for(far_name) == (0, 0)  # rendered, not fetched
    far_item = message(page, far)
    height = far_item.evaluate("item => item.getBoundingClientRect().height")
    far_item.scroll_into_view_if_needed()
    far_image = far_item.locator(".attachments img")
    expect(far_image).to_have_js_property("naturalWidth", 3, timeout=WAIT_MS)
    expect(far_image).to_have_attribute("alt", far_name)
    assert asked_for(far_name) == (1, 1)  # one link for the image and its caption's link
    assert far_item.evaluate("item => item.getBoundingClientRect().height") == height


def test_a_file_link_that_may_have_expired_is_renewed_when_opened(open_page, local_stack) -> None:
    """A file is a real link to the storage. Clicked after its lifetime (the
    pointer resting on it all along), it is first replaced by a fresh link from
    the API, which is then followed: the download works. Clicked again within
    the new link's lifetime, the link held is followed as it is; middle-clicked
    once that has expired too, a fresh one opens in a new tab."""
    text, name = f"the minutes {uuid.uuid4().hex}", f"{unique('minutes')}.txt"
    content = b"minutes of the meeting\n"
    write(local_stack, [text], {text: (name, "text/plain", content)})

    page = open_page()
    links: list[str] = []
    ours = lambda url: "/api/attachments/link?" in url and name in url  # noqa: E731
    page.on("request", lambda r: links.append(r.url) if ours(r.url) else None)
    with page.expect_response(lambda r: ours(r.url)) as answer:
        register(page, unique("minutes_reader"))  # the window replays the message
    lifetime = answer.value.json()["expires_in"]
    assert lifetime <= 10, "this stack's links should be short-lived"
    link = message(page, text).locator("a.attachment-file")
    expect(link).to_have_text(f"{name}{len(content)} B")
    expect(link).to_have_attribute("href", re.compile("^" + re.escape(local_stack["s3_url"])))
    first = link.get_attribute("href")
    link.hover()  # and the pointer rests there while the link expires
    assert len(links) == 1

    time.sleep(lifetime)
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_bytes() == content
    assert download.value.suggested_filename == name
    assert len(links) == 2
    renewed = link.get_attribute("href")
    assert renewed != first and download.value.url == renewed

    with page.expect_download() as again:
        link.click()
    assert again.value.url == renewed
    assert len(links) == 2

    time.sleep(lifetime)
    with page.expect_download() as in_a_new_tab:
        link.click(button="middle")
    assert len(links) == 3
    assert in_a_new_tab.value.url == link.get_attribute("href") != renewed


def test_a_gap_filled_over_a_flaky_network_is_whole_and_once(open_page, local_stack) -> None:
    """Back from a long absence, each page of the gap fails once first (as on
    a flaky network): the page tries again by itself until the gap is
    filled, and shows every missed message once, in id order."""
    page = open_page()
    lines, new_lines = route_through_lines(page, local_stack["ws_url"])
    register(page, unique("flaky"))
    before = f"before {uuid.uuid4().hex}"
    write(local_stack, [before])
    expect(message(page, before)).to_have_count(1, timeout=WAIT_MS)
    last_seen = shown_ids(page)[-1]
    failed: list[str] = []

    def each_page_fails_once(route) -> None:
        if route.request.url not in failed:
            failed.append(route.request.url)
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(re.compile(r"/api/rooms/general/messages\?"), each_page_fails_once)
    new_lines["hold"] = True
    wait_for_lines(page, lines, 1).cut(1012, "replica restarting")
    second = wait_for_lines(page, lines, 2)
    new_lines["hold"] = False
    missed = [f"missed {i} {uuid.uuid4().hex}" for i in range(120)]
    write(local_stack, missed)
    second.release()

    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    for text in (missed[0], missed[99], missed[-1]):
        expect(message(page, text)).to_have_count(1, timeout=LONG_MS)
    expect(page.locator("#history-status")).to_have_text("", timeout=LONG_MS)
    assert len(failed) >= 2, "the gap was not read page by page"
    ids = shown_ids(page)
    assert_in_id_order_once(ids)
    stored = stored_ids(local_stack, session_token(page))
    assert ids[ids.index(last_seen) :] == stored[stored.index(last_seen) :]
