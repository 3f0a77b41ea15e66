"""What a page reports as read, in Debian's Chromium against the local stack:
a message counts once its row has really been on screen with the tab visible
(watched by an IntersectionObserver, so a row that comes into view with no
scroll at all counts too), and never while it is out of view."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.e2e.test_browser_rooms import PUSHED_MS, create_room, room_button
from tests.support.browser import WAIT_MS, expect, message, register, say, session_token, unique

# The list made short, then tall, by the test: a layout change that is no scroll.
# (Through the CSSOM: the page's CSP refuses style elements and attributes.)
SHORT_LIST = """() => {
  const list = document.getElementById("messages");
  list.style.setProperty("flex", "none", "important");
  list.style.setProperty("height", "120px", "important");
}"""
GROW_LIST_TO_ITS_END = """() => {
  const list = document.getElementById("messages");
  // Tall enough to show the last row, not so tall that the scroll position
  // must move (that would be a scroll event).
  const height = list.scrollHeight - list.scrollTop - 4;
  list.style.setProperty("height", `${height}px`, "important");
}"""
COUNT_SCROLLS = """() => {
  window.listScrolls = 0;
  document.getElementById("messages").addEventListener("scroll", () => window.listScrolls++);
}"""


def read_cursor(local_stack: dict, page, room: str) -> str | None:
    """The page's user's `read` cursor in `room`, as the server has it."""
    auth = {"Authorization": f"Bearer {session_token(page)}"}
    listed = httpx.get(f"{local_stack['api_url']}/api/rooms", headers=auth, timeout=10).json()
    return next(entry.get("read") for entry in listed["rooms"] if entry["room"] == room)


def wait_for_cursor(local_stack: dict, page, room: str, wanted: str, what: str) -> None:
    for _ in range(WAIT_MS // 100):
        if read_cursor(local_stack, page, room) == wanted:
            return
        page.wait_for_timeout(100)
    raise AssertionError(what)


def test_the_read_cursor_moves_for_rows_really_on_screen_and_nothing_else(
    open_page, local_stack: dict
) -> None:
    """Ben reads Ana's messages; with his list short and scrolled to its top,
    a new message below the view is not read, however long he waits; the
    list grows with no scroll (a layout change, as an image loading makes)
    and the message shows: now it is read."""
    ana, ben = open_page(), open_page(viewport={"width": 1100, "height": 1200})
    ana_name, ben_name = unique("ana"), unique("ben")
    register(ana, ana_name)
    register(ben, ben_name)
    room = f"reading-{uuid.uuid4().hex[:8]}"
    create_room(ana, room, private=True)
    auth = {"Authorization": f"Bearer {session_token(ana)}"}
    invited = httpx.put(f"{local_stack['api_url']}/api/rooms/{room}/members/{ben_name}",
                        headers=auth, timeout=10)  # fmt: skip
    assert invited.status_code == 200
    room_button(ben, room).click(timeout=PUSHED_MS)
    expect(ben.get_by_role("heading", name=f"#{room}")).to_be_visible()

    lines = [f"line {i} {uuid.uuid4().hex}" for i in range(4)]
    for line in lines:
        say(ana, line)
    last = message(ben, lines[-1])
    expect(last).to_have_attribute("data-id", re.compile("-"), timeout=WAIT_MS)
    last_id = last.get_attribute("data-id")
    wait_for_cursor(local_stack, ben, room, last_id, "Ben's page never read what it showed")

    ben.evaluate(SHORT_LIST)
    # One more line: the page, at the newest, follows it to the end of the
    # short list; then Ben scrolls back to the top.
    one_more = f"one more {uuid.uuid4().hex}"
    say(ana, one_more)
    expect(message(ben, one_more)).to_be_in_viewport(timeout=WAIT_MS)
    seen_id = message(ben, one_more).get_attribute("data-id")
    wait_for_cursor(local_stack, ben, room, seen_id, "Ben's page never read its newest line")
    ben.locator("#messages").hover()
    ben.mouse.wheel(0, -2000)
    expect(message(ben, lines[0])).to_be_in_viewport()
    below = f"below {uuid.uuid4().hex}"
    say(ana, below)
    row = message(ben, below)
    expect(row).to_have_count(1, timeout=WAIT_MS)
    assert not row.evaluate(
        "(r) => { const l = r.closest('ol').getBoundingClientRect();"
        " return r.getBoundingClientRect().top < l.bottom; }"
    ), "the new message should be below the short list's view"
    ben.wait_for_timeout(1500)  # more than a batch of `read` (1 s)
    assert read_cursor(local_stack, ben, room) == seen_id

    ben.evaluate(COUNT_SCROLLS)
    ben.evaluate(GROW_LIST_TO_ITS_END)
    expect(row).to_be_in_viewport()
    wait_for_cursor(local_stack, ben, room, row.get_attribute("data-id"),
                    "a message that came into view with no scroll was never read")  # fmt: skip
    assert ben.evaluate("window.listScrolls") == 0
