"""A message's life after sending, in Debian's Chromium against the local
stack: an edit, a reaction and a delete made over REST reach an open page
live, and the page reports what it has read."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import expect

from tests.support.browser import (
    WAIT_MS,
    message,
    register,
    say,
    session_token,
    unique,
    wait_until,
)


def test_an_edit_a_reaction_and_a_delete_reach_an_open_page_which_reports_its_reading(
    open_page, local_stack: dict
) -> None:
    alice, bob = open_page(), open_page()
    register(alice, unique("alice"))
    register(bob, unique("bob"))
    text = f"before {uuid.uuid4().hex}"
    say(alice, text)
    shown = message(bob, text)
    expect(shown).to_have_count(1, timeout=WAIT_MS)
    message_id = shown.get_attribute("data-id")
    api, token = local_stack["api_url"], session_token(alice)
    path = f"{api}/api/rooms/general/messages/{message_id}"
    auth = {"Authorization": f"Bearer {token}"}

    edited = f"after {uuid.uuid4().hex}"
    assert httpx.patch(path, json={"text": edited}, headers=auth, timeout=10).status_code == 200
    now = message(bob, edited)
    expect(now).to_have_count(1, timeout=WAIT_MS)
    expect(now.locator(".edited")).to_have_text("edited")

    assert httpx.put(f"{path}/reactions/👍", headers=auth, timeout=10).status_code == 200
    expect(now.locator(".reactions")).to_have_text("👍 1", timeout=WAIT_MS)

    # Bob's page has shown the message: his read cursor reaches it (his
    # listing has general once the drain stored his join).
    bob_auth = {"Authorization": f"Bearer {session_token(bob)}"}

    def bob_has_read() -> bool:
        listed = httpx.get(f"{api}/api/rooms", headers=bob_auth, timeout=10).json()["rooms"]
        return {"room": "general", "read": message_id, "unread": 0}.items() <= next(
            (room.items() for room in listed if room["room"] == "general"), set()
        )

    wait_until(bob, bob_has_read, "the page never reported reading the message")

    assert httpx.delete(path, headers=auth, timeout=10).status_code == 200
    gone = bob.locator(f'#messages .message[data-id="{message_id}"]')
    expect(gone.locator(".text")).to_have_text("Message deleted", timeout=WAIT_MS)
    expect(gone.locator(".reactions")).to_have_count(0)
