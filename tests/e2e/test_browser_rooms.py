"""Rooms in the browser client, three people in Debian's Chromium against the
local stack: a private room created, an invitation, unread badges and the
tab's title, the typing indicator, a removal; a direct message started from
a person's name; and the rooms' dialogs pass axe-core in both themes."""

from __future__ import annotations

import json
import re
import uuid

from tests.e2e.test_browser_quality import SIZES, serious_violations
from tests.support.browser import (
    WAIT_MS,
    expect,
    message,
    register,
    route_through_lines,
    say,
    unique,
    wait_for_lines,
)

PUSHED_MS = 5_000  # a pushed change shows within this (the timed re-read is every 30 s)


def sidebar(page):
    return page.get_by_role("navigation", name="Rooms")


def room_button(page, text: str):
    return sidebar(page).locator("button[data-room]").filter(has_text=text)


def create_room(page, room: str, private: bool) -> None:
    sidebar(page).get_by_role("button", name="New room").click()
    dialog = page.get_by_role("dialog", name="New room")
    dialog.get_by_label("Room name").fill(room)
    if private:
        dialog.get_by_label("Private").check()
    dialog.get_by_role("button", name="Create").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name=f"#{room}")).to_be_visible()


def test_a_private_room_invites_chats_counts_unread_and_removes(open_page, screenshots) -> None:
    """Ana makes a private room and invites Ben; Cat, not invited, never sees
    its name or messages. Ben, in #general, sees an unread badge and the count
    in the tab's title, which clear when he opens the room at the new-messages
    divider; he sees Ana typing; removed, the room leaves his sidebar with a notice."""
    names = {who: unique(who) for who in ("ana", "ben", "cat")}
    ana, ben, cat = (open_page() for _ in range(3))
    for page, who in ((ana, "ana"), (ben, "ben"), (cat, "cat")):
        register(page, names[who])
        expect(page.get_by_role("heading", name="#general")).to_be_visible()
    room = f"plans-{uuid.uuid4().hex[:8]}"
    create_room(ana, room, private=True)
    expect(room_button(ana, room)).to_have_attribute("aria-current", "page")

    ana.get_by_role("button", name="Room", exact=True).click()
    info = ana.get_by_role("dialog", name=f"#{room}")
    info.get_by_label("Invite by username").fill(names["ben"])
    info.get_by_role("button", name="Invite").click()
    expect(info.locator(".member").filter(has_text=names["ben"])).to_have_count(1)
    info.get_by_role("button", name="Close").click()

    # Pushed (`rooms_changed`): no reload, and well before the 30 s re-read.
    expect(room_button(ben, room)).to_be_visible(timeout=PUSHED_MS)
    expect(ben.get_by_role("heading", name="#general")).to_be_visible()
    texts = [f"first {uuid.uuid4().hex}", f"@{names['ben']} second {uuid.uuid4().hex}"]
    for text in texts:
        say(ana, text)
    badge = room_button(ben, room).locator(".badge")
    expect(badge).to_have_text("2", timeout=WAIT_MS)
    expect(badge).to_have_class(re.compile("badge-mention"))  # he was mentioned
    assert ben.title().startswith("(2) ")

    room_button(ben, room).click()
    expect(ben.get_by_role("heading", name=f"#{room}")).to_be_visible()
    expect(message(ben, texts[1])).to_have_count(1)
    expect(ben.locator("#messages .new-divider")).to_have_text("New messages")
    expect(message(ben, texts[1]).locator("mark.mention")).to_have_text(f"@{names['ben']}")
    expect(badge).to_have_count(0)
    expect(ben).to_have_title(re.compile(r"^AuroraChat$"))
    # The draft typed in a room waits there while another room shows.
    ben.get_by_label("Message", exact=True).fill("half a thought")
    room_button(ben, "#general").click()
    expect(ben.get_by_label("Message", exact=True)).to_have_value("")
    room_button(ben, room).click()
    expect(ben.get_by_label("Message", exact=True)).to_have_value("half a thought")

    ana.get_by_label("Message", exact=True).press_sequentially("thinking")
    expect(ben.get_by_test_id("typing")).to_have_text(f"{names['ana']} is typing…")
    ben.screenshot(path=screenshots / "rooms-light-desktop.png")

    # Cat, never invited: not a trace of the room in his page.
    cat.wait_for_timeout(300)
    html = cat.content()
    assert room not in html and texts[0] not in html

    ana.get_by_role("button", name="Room", exact=True).click()
    info = ana.get_by_role("dialog", name=f"#{room}")
    info.get_by_role("button", name=f"Remove {names['ben']}").click()
    expect(info.locator(".member").filter(has_text=names["ben"])).to_have_count(0)
    expect(ben.locator("#notice")).to_have_text(f"You were removed from #{room}.", timeout=WAIT_MS)
    expect(room_button(ben, room)).to_have_count(0)
    expect(ben.get_by_role("heading", name="#general")).to_be_visible()


def test_every_room_resumes_after_a_reconnect_with_nothing_lost_or_twice(
    open_page, local_stack
) -> None:
    """Ana is in #general and in a public room; her line is cut (a replica
    restarting) while Ben writes in both and she writes in the room: once
    back, each room shows every message once, and the one she typed is sent."""
    ana, ben = open_page(), open_page()
    lines, _ = route_through_lines(ana, local_stack["ws_url"])
    register(ana, unique("ana"))
    register(ben, unique("ben"))
    room = f"resume-{uuid.uuid4().hex[:8]}"
    create_room(ana, room, private=False)
    ben.get_by_role("button", name="Browse public rooms").click()
    ben.get_by_role("dialog", name="Public rooms").get_by_role(
        "button", name=f"Join #{room}"
    ).click()
    expect(ben.get_by_role("heading", name=f"#{room}")).to_be_visible()
    before = f"before {uuid.uuid4().hex}"
    say(ben, before)
    expect(message(ana, before)).to_have_count(1, timeout=WAIT_MS)

    first = wait_for_lines(ana, lines, 1)
    first.drop = True  # what Ana says from here is lost with the line
    mine = f"typed as the line fails {uuid.uuid4().hex}"
    say(ana, mine)
    first.cut(1012, "replica restarting")
    missed_room = f"missed in the room {uuid.uuid4().hex}"
    say(ben, missed_room)
    room_button(ben, "#general").click()
    missed_general = f"missed in general {uuid.uuid4().hex}"
    say(ben, missed_general)
    wait_for_lines(ana, lines, 2)
    expect(ana.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    for text in (before, mine, missed_room):
        expect(message(ana, text)).to_have_count(1, timeout=WAIT_MS)
    expect(ana.locator("#messages .pending")).to_have_count(0, timeout=WAIT_MS)
    expect(room_button(ana, "#general").locator(".badge")).to_have_text("1")
    room_button(ana, "#general").click()
    expect(message(ana, missed_general)).to_have_count(1)
    room_button(ben, room).click()
    expect(message(ben, mine)).to_have_count(1, timeout=WAIT_MS)


def open_direct(ana, ben, ben_name: str) -> None:
    """Ben says something in general; Ana opens a direct room from his name on it."""
    hello = f"hello all {uuid.uuid4().hex}"
    say(ben, hello)
    message(ana, hello).get_by_role("button", name=ben_name).click()
    ana.get_by_role("dialog", name=ben_name).get_by_role("button", name="Direct message").click()
    expect(ana.get_by_role("heading", name=f"@{ben_name}")).to_be_visible()


def test_a_direct_message_starts_from_a_name_and_is_listed_under_it(open_page) -> None:
    """Ana chooses Ben's name on his message, then Direct message: the room
    opens named after Ben; Ben finds it under Ana's name, with her message
    unread, pushed to his open page."""
    ana_name, ben_name = unique("ana"), unique("ben")
    ana, ben = open_page(), open_page()
    register(ana, ana_name)
    register(ben, ben_name)
    open_direct(ana, ben, ben_name)
    private = f"just us {uuid.uuid4().hex}"
    say(ana, private)
    expect(message(ana, private)).to_have_attribute("data-id", re.compile("-"))
    # Pushed: the new direct room shows under Ana's name, its message unread.
    direct = ben.get_by_role("list", name="Direct messages").get_by_role("button")
    expect(direct).to_have_text(re.compile(f"^@{ana_name}"), timeout=PUSHED_MS)
    expect(direct.locator(".badge")).to_have_text("1")
    direct.click()
    expect(message(ben, private)).to_have_count(1)


def test_the_rooms_dialogs_pass_axe_in_both_themes(open_page, screenshots) -> None:
    """New room, public rooms and a room's page: nothing serious for axe-core,
    light on a desktop and dark on a phone."""
    found = {}
    for theme, size in (("light", "desktop"), ("dark", "phone")):
        page = open_page(viewport=SIZES[size], color_scheme=theme)
        register(page, unique("axe"))
        create_room(page, f"axe-{uuid.uuid4().hex[:8]}", private=False)
        for name, opener in (
            ("New room", "New room"),
            ("Public rooms", "Browse public rooms"),
        ):
            page.get_by_role("button", name=opener).click()
            expect(page.get_by_role("dialog", name=name)).to_be_visible()
            found[f"{name} {theme}-{size}"] = serious_violations(page)
            shot = name.lower().replace(" ", "-")
            page.screenshot(path=screenshots / f"{shot}-{theme}-{size}.png")
            page.keyboard.press("Escape")
            expect(page.get_by_role("dialog")).to_be_hidden()
        page.get_by_role("button", name="Room", exact=True).click()
        expect(page.locator("#room-dialog")).to_be_visible()
        found[f"room {theme}-{size}"] = serious_violations(page)
        page.screenshot(path=screenshots / f"room-page-{theme}-{size}.png")
        page.keyboard.press("Escape")
        found[f"chat with rooms {theme}-{size}"] = serious_violations(page)
    assert {screen: v for screen, v in found.items() if v} == {}


def test_the_online_panel_follows_presence_frames_and_hides(open_page, local_stack) -> None:
    """The presence frames of the shared contract (a list after `joined`, then
    changes) fill the `Online` landmark beside the conversation: names as
    buttons, the count with what is not listed; the panel hides and shows
    again with its button. Frames are put on the page's line by the test."""
    page = open_page(viewport=SIZES["desktop"])
    lines, _ = route_through_lines(page, local_stack["ws_url"])
    register(page, unique("ola"))
    line = wait_for_lines(page, lines, 1)
    panel = page.get_by_role("complementary", name="Online")
    expect(panel).to_contain_text("Nobody's presence has been reported yet.")
    online = [{"user": f"p{i}", "user_id": f"id{i}"} for i in range(3)]
    snapshot = {"type": "presence", "room": "general", "count": 60, "online": online, "more": True}
    line.route.send(json.dumps(snapshot))
    expect(panel.get_by_role("button")).to_have_text(["p0", "p1", "p2"])
    expect(panel).to_contain_text("(60)")
    expect(panel).to_contain_text("and 57 more")
    change = {"type": "presence", "room": "general", "count": 59, "user": "p1"}
    line.route.send(json.dumps(change | {"user_id": "id1", "status": "offline"}))
    expect(panel.get_by_role("button")).to_have_text(["p0", "p2"])
    expect(panel).to_contain_text("(59)")
    toggle = page.get_by_role("button", name="Online", exact=True)
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(panel).to_be_hidden()
    toggle.click()
    expect(panel).to_be_visible()


def test_a_keyboard_alone_makes_a_room_and_switches_rooms(open_page) -> None:
    """Tab to New room, type the name, Enter creates it; Alt+↓ / Alt+↑ switch
    rooms from the message box; ↑ in the message list reaches an author's name,
    Enter on it opens their page, Escape closes it back to the name."""
    page = open_page()
    name = unique("kim")
    register(page, name)
    keys = page.keyboard
    for _ in range(30):
        if page.evaluate("document.activeElement.id") == "new-room":
            break
        keys.press("Shift+Tab")
    else:
        raise AssertionError("Tab never reached New room")
    keys.press("Enter")
    expect(page.get_by_label("Room name")).to_be_focused()
    room = f"keys-{uuid.uuid4().hex[:8]}"
    keys.type(room)
    keys.press("Enter")
    expect(page.get_by_role("heading", name=f"#{room}")).to_be_visible()
    composer = page.get_by_label("Message", exact=True)
    composer.focus()
    keys.type(f"hello from {name}")
    keys.press("Enter")
    expect(message(page, f"hello from {name}")).to_have_attribute("data-id", re.compile("-"))
    composer.focus()
    keys.press("Alt+ArrowDown")
    expect(page.get_by_role("heading", name="#general")).to_be_visible()
    keys.press("Alt+ArrowUp")
    expect(page.get_by_role("heading", name=f"#{room}")).to_be_visible()
    page.locator("#messages").focus()
    keys.press("ArrowUp")
    author = page.locator("#messages .user").last
    expect(author).to_be_focused()
    keys.press("Enter")
    expect(page.get_by_role("dialog", name=name)).to_be_visible()
    keys.press("Escape")
    expect(author).to_be_focused()
