"""A message's life as people use it, in Debian's Chromium against the local
stack: edit, delete and react from a message's actions, seen live by the
other person; receipts in a direct room; unread counts kept by the server."""

from __future__ import annotations

import re
import uuid

from tests.e2e.test_browser_quality import SIZES, log_in, serious_violations
from tests.e2e.test_browser_rooms import create_room, open_direct, sidebar
from tests.support.browser import (
    WAIT_MS,
    expect,
    message,
    register,
    route_through_lines,
    say,
    unique,
    wait_for_lines,
    wait_until,
)


def chip(item, name: str):
    """A reaction chip, named by its emoji and count."""
    return item.get_by_role("button", name=name, exact=True)


def actions(item):
    return item.get_by_role("group", name="Message actions")


def test_two_people_edit_react_and_delete_from_the_message_actions(open_page, screenshots) -> None:
    """In Ana's public room, each person's actions follow who they are: the
    author has Edit, Delete and React, the owner also Delete on Ben's, Ben
    only React on hers. Escape cancels an edit, Enter saves it; reactions are
    chips named "👍 2", each person's own pressed, toggled by a click; a
    delete leaves a tombstone. The other sees every change live; axe finds
    nothing serious."""
    ana, ben = open_page(), open_page()
    ben_name = unique("ben")
    register(ana, unique("ana"))
    register(ben, ben_name)
    room = f"actions-{uuid.uuid4().hex[:8]}"
    create_room(ana, room, private=False)
    ben.get_by_role("button", name="Browse public rooms").click()
    ben.get_by_role("dialog", name="Public rooms").get_by_role(
        "button", name=f"Join #{room}"
    ).click()
    expect(ben.get_by_role("heading", name=f"#{room}")).to_be_visible()
    text, bens = f"first draft {uuid.uuid4().hex}", f"from ben {uuid.uuid4().hex}"
    say(ben, bens)
    say(ana, text)
    mine, theirs = message(ana, text), message(ben, text)
    expect(mine).to_have_attribute("data-id", re.compile("-"), timeout=WAIT_MS)
    expect(theirs).to_have_count(1, timeout=WAIT_MS)
    expect(message(ana, bens)).to_have_count(1, timeout=WAIT_MS)

    # Who sees what, as data: (page, message, the actions offered).
    everything = {"React", "Edit", "Delete"}
    offered = [
        (ana, mine, everything),  # her own
        (ben, theirs, {"React"}),  # another member's
        (ana, message(ana, bens), {"React", "Delete"}),  # the owner, on a member's
        (ben, message(ben, bens), everything),
    ]
    for _page, item, names in offered:
        item.hover()
        for name in everything:
            button = actions(item).get_by_role("button", name=name, exact=True)
            if name in names:
                expect(button).to_be_visible()
            else:
                expect(button).to_have_count(0)

    # Edit: the text selected and focused; Escape cancels, Enter saves.
    mine.hover()
    actions(mine).get_by_role("button", name="Edit").click()
    editor = mine.get_by_role("textbox", name="Edit message")
    expect(editor).to_be_focused()
    expect(editor).to_have_value(text)
    assert editor.evaluate("e => [e.selectionStart, e.selectionEnd]") == [0, len(text)]
    editor.press("Escape")
    expect(editor).to_have_count(0)
    expect(mine.locator(".text")).to_have_text(text)
    expect(mine.locator(".edited")).to_have_count(0)

    edited = f"second thought {uuid.uuid4().hex}"
    mine.hover()
    actions(mine).get_by_role("button", name="Edit").click()
    editor.press("ArrowUp")  # the editor's own keys, not the list's
    expect(editor).to_be_focused()
    editor.fill(edited)
    editor.press("Enter")
    now = message(ben, edited)
    expect(now).to_have_count(1, timeout=WAIT_MS)
    expect(now.locator(".edited")).to_have_text("edited")
    mine = message(ana, edited)
    expect(mine.locator(".edited")).to_have_text("edited")

    # React: the picker's buttons are the emoji alone; chips "👍 1", "👍 2".
    now.hover()
    actions(now).get_by_role("button", name="React").click()
    picker = now.get_by_role("group", name="Reactions")
    expect(picker.get_by_role("button", name="🎉")).to_be_visible()
    picker.get_by_role("button", name="👍", exact=True).click()
    expect(picker).to_have_count(0)
    expect(chip(now, "👍 1")).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    expect(chip(mine, "👍 1")).to_have_attribute("aria-pressed", "false", timeout=WAIT_MS)
    chip(mine, "👍 1").click()
    expect(chip(mine, "👍 2")).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    expect(chip(now, "👍 2")).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)
    chip(now, "👍 2").click()  # Ben takes his back
    expect(chip(now, "👍 1")).to_have_attribute("aria-pressed", "false", timeout=WAIT_MS)
    expect(chip(mine, "👍 1")).to_have_attribute("aria-pressed", "true", timeout=WAIT_MS)

    # From the keyboard: the author's name, then → along the actions.
    mine.locator(".meta .user").focus()
    mine.locator(".meta .user").press("ArrowRight")
    expect(actions(mine).get_by_role("button", name="React")).to_be_focused()
    ana.keyboard.press("ArrowRight")
    expect(actions(mine).get_by_role("button", name="Edit")).to_be_focused()
    ana.keyboard.press("Enter")
    expect(mine.get_by_role("textbox", name="Edit message")).to_be_focused()
    ana.mouse.move(0, 0)  # keyboard only: nothing hovered
    ana.keyboard.press("Escape")
    expect(actions(mine).get_by_role("button", name="Edit")).to_be_focused()

    # Ben has the message on screen: Ana's actions offer "Seen by 1", which
    # opens the list of names, focused; Escape closes it, back on the button.
    seen_button = actions(mine).get_by_role("button", name="Seen by 1")

    def seen_by_ben() -> bool:
        ana.mouse.move(0, 0)
        mine.hover()
        return seen_button.count() == 1

    wait_until(ana, seen_by_ben, "Ana's page never showed that Ben had seen the message")
    expect(seen_button).to_have_attribute("aria-expanded", "false")
    seen_button.click()
    seen = mine.get_by_role("list", name="Seen by")
    expect(seen).to_be_focused()
    expect(seen.get_by_role("listitem")).to_have_text([ben_name])
    expect(seen_button).to_have_attribute("aria-expanded", "true")
    assert serious_violations(ana) == []
    seen.press("Escape")
    expect(seen).to_have_count(0)
    expect(seen_button).to_be_focused()

    # The actions and the picker, open, for the screenshot and for axe.
    mine.hover()
    actions(mine).get_by_role("button", name="React").click()
    expect(mine.get_by_role("group", name="Reactions")).to_be_visible()
    ana.screenshot(path=screenshots / "message-actions-light-desktop.png")
    assert serious_violations(ana) == []
    # Dark on a phone: the same controls, nothing serious either.
    ana.emulate_media(color_scheme="dark")
    ana.set_viewport_size(SIZES["phone"])
    mine.get_by_role("group", name="Reactions").scroll_into_view_if_needed()
    mine.hover()
    expect(mine.get_by_role("group", name="Reactions")).to_be_visible()
    ana.screenshot(path=screenshots / "message-actions-dark-phone.png")
    assert serious_violations(ana) == []
    ana.emulate_media(color_scheme="light")
    ana.set_viewport_size(SIZES["desktop"])
    mine.get_by_role("group", name="Reactions").get_by_role("button", name="🎉").press("Escape")
    expect(mine.get_by_role("group", name="Reactions")).to_have_count(0)
    expect(actions(mine).get_by_role("button", name="React")).to_be_focused()

    # Delete asks first, in a dialog focused on its Delete button: Escape
    # keeps the message (focus back on the action), Enter deletes it.
    message_id = mine.get_attribute("data-id")
    actions(mine).get_by_role("button", name="Delete").click()
    confirm = ana.get_by_role("dialog", name="Delete message?")
    expect(confirm).to_contain_text("Your message will be removed for everyone")
    expect(confirm.locator("blockquote")).to_have_text(edited)
    expect(confirm.get_by_role("button", name="Delete")).to_be_focused()
    ana.screenshot(path=screenshots / "delete-message-light-desktop.png")
    assert serious_violations(ana) == []
    ana.keyboard.press("Escape")
    expect(confirm).to_have_count(0)
    expect(actions(mine).get_by_role("button", name="Delete")).to_be_focused()
    expect(mine.locator(".text")).to_have_text(edited)
    ana.keyboard.press("Enter")  # the action again, then the dialog's Delete
    expect(confirm.get_by_role("button", name="Delete")).to_be_focused()
    ana.keyboard.press("Enter")
    # A tombstone on both pages, no actions left on it.
    gone = ben.locator(f'#messages .message[data-id="{message_id}"]')
    expect(gone.locator(".text")).to_have_text("Message deleted", timeout=WAIT_MS)
    expect(gone.locator(".reactions")).to_have_count(0)
    tombstone = ana.locator(f'#messages .message[data-id="{message_id}"]')
    expect(tombstone.locator(".text")).to_have_text("Message deleted")
    gone.hover()
    expect(gone.get_by_role("button", name="React")).to_have_count(0)

    # The owner deletes Ben's message: gone from his page too.
    bens_item = message(ana, bens)
    bens_item.hover()
    actions(bens_item).get_by_role("button", name="Delete").click()
    expect(confirm).to_contain_text(f"{ben_name}'s message will be removed for everyone")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    expect(message(ana, bens)).to_have_count(1)
    bens_item.hover()
    actions(bens_item).get_by_role("button", name="Delete").click()
    confirm.get_by_role("button", name="Delete").click()
    expect(message(ben, bens)).to_have_count(0, timeout=WAIT_MS)
    expect(ben.locator("#messages .message.deleted")).to_have_count(2)


def test_a_direct_message_goes_sent_delivered_read_and_unread_counts_are_the_servers(
    open_page, local_stack
) -> None:
    """Ana writes to Ben: her message shows Sent, Delivered once his page has
    it, Read once he has seen it. His unread count comes from the server: a
    fresh browser shows it, and once read it stays cleared across a reload."""
    ana_name, ben_name = unique("ana"), unique("ben")
    ana, ben = open_page(), open_page()
    ben_lines, _ = route_through_lines(ben, local_stack["ws_url"])
    register(ana, ana_name)
    register(ben, ben_name)
    open_direct(ana, ben, ben_name)
    # Until Ana has seen Sent, nothing reaches Ben's page: the server pushes
    # him the new room, and his page would join it and confirm her messages.
    ben_line = wait_for_lines(ben, ben_lines, 1)
    ben_line.hold = True
    texts = [f"just us {n} {uuid.uuid4().hex}" for n in range(2)]
    for text in texts:
        say(ana, text)
    last = message(ana, texts[1])
    expect(last.locator(".receipt-state")).to_have_text("Sent", timeout=WAIT_MS)
    ben_line.release()

    # Ben's tab comes into view: the listing brings the direct room, with
    # both messages unread; his page has them: delivered.
    ben.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    direct = ben.get_by_role("list", name="Direct messages").get_by_role("button")
    expect(direct.locator(".badge")).to_have_text("2", timeout=WAIT_MS)
    expect(last.locator(".receipt-state")).to_have_text("Delivered", timeout=WAIT_MS)

    # Another browser of Ben's, with nothing of his in it: the server's count.
    elsewhere = open_page()
    log_in(elsewhere, ben_name)
    other_direct = elsewhere.get_by_role("list", name="Direct messages").get_by_role("button")
    expect(other_direct.locator(".badge")).to_have_text("2", timeout=WAIT_MS)

    direct.click()
    expect(message(ben, texts[1])).to_be_visible()
    expect(last.locator(".receipt-state")).to_have_text("Read", timeout=WAIT_MS)
    expect(message(ana, texts[0]).locator(".receipt-state")).to_have_text("Read")
    assert serious_violations(ana) == []
    # Read in one browser is read in the other, after a reload too.
    elsewhere.reload()
    expect(sidebar(elsewhere).locator("button[data-room]").first).to_be_visible(timeout=WAIT_MS)
    expect(other_direct).to_have_text(re.compile(f"^@{ana_name}"), timeout=WAIT_MS)
    expect(other_direct.locator(".badge")).to_have_count(0)


def test_changes_made_while_the_socket_is_down_go_over_rest(open_page, local_stack) -> None:
    """Ana's WebSocket is cut and stays down (what the server says is held
    back): her edit and her reaction go to the REST twins, and Ben, still
    connected, sees both live."""
    ana, ben = open_page(), open_page()
    lines, new_lines = route_through_lines(ana, local_stack["ws_url"])
    register(ana, unique("ana"))
    register(ben, unique("ben"))
    text = f"said online {uuid.uuid4().hex}"
    say(ana, text)
    expect(message(ben, text)).to_have_count(1, timeout=WAIT_MS)
    mine = message(ana, text)
    expect(mine).to_have_attribute("data-id", re.compile("-"), timeout=WAIT_MS)

    new_lines["hold"] = True  # the next connections never hear `ready`
    wait_for_lines(ana, lines, 1).cut(1012, "replica restarting")
    expect(ana.locator("#status")).not_to_have_attribute("data-state", "online", timeout=WAIT_MS)

    edited = f"edited offline {uuid.uuid4().hex}"
    mine.hover()
    actions(mine).get_by_role("button", name="Edit").click()
    mine.get_by_role("textbox", name="Edit message").fill(edited)
    mine.get_by_role("textbox", name="Edit message").press("Enter")
    seen = message(ben, edited)
    expect(seen).to_have_count(1, timeout=WAIT_MS)
    expect(seen.locator(".edited")).to_have_text("edited")

    mine = message(ana, edited)
    mine.hover()
    actions(mine).get_by_role("button", name="React").click()
    mine.get_by_role("group", name="Reactions").get_by_role("button", name="🎉").click()
    expect(chip(seen, "🎉 1")).to_be_visible(timeout=WAIT_MS)
    assert not any(f.get("type") in ("edit", "react") for line in lines for f in line.from_page)
