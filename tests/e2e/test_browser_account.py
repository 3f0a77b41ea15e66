"""The account dialog in Debian's Chromium against the local stack: a password
change keeps this browser signed in and signs every other one out; log out
everywhere signs out every browser of the user, and only theirs."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.support.browser import (
    PASSWORD,
    WAIT_MS,
    expect,
    hearing_storage_late,
    me,
    message,
    register,
    say,
    session_token,
    signed_out_locks,
    unique,
)

NEW_PASSWORD = "a-new-and-longer-secret"


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)


def open_account(page):
    page.get_by_role("button", name="Account").click()
    dialog = page.get_by_role("dialog", name="Account")
    expect(dialog).to_be_visible()
    return dialog


def test_a_password_change_keeps_this_browser_and_signs_out_every_other(
    open_page, local_stack
) -> None:
    """Wrong or weak passwords are explained; a change keeps both tabs of this
    browser connected (their sockets are closed by the server and come back
    with the new session) while another browser of the same user is signed out."""
    laptop = open_page()
    name = unique("alice")
    register(laptop, name)
    laptop_tab, phone = open_page(beside=laptop), open_page()
    expect(laptop_tab.locator("#status")).to_have_attribute("data-state", "online")
    log_in(phone, name)
    old_token = session_token(laptop)

    laptop.bring_to_front()  # a tab in the background paints late: clicks wait for it
    dialog = open_account(laptop)
    expect(dialog.get_by_label("Current password")).to_be_focused()
    dialog.get_by_label("Current password").fill("not-my-password")
    dialog.get_by_label("New password").fill(NEW_PASSWORD)
    dialog.get_by_role("button", name="Change password").click()
    expect(dialog.locator("#password-error")).to_have_text("The current password is wrong.")
    expect(dialog.get_by_label("Current password")).to_be_focused()

    dialog.get_by_label("Current password").fill(PASSWORD)
    dialog.get_by_label("New password").fill("short")
    dialog.get_by_role("button", name="Change password").click()
    expect(dialog.locator("#password-error")).to_contain_text("too weak")
    assert me(local_stack, old_token).status_code == 200  # nothing was sent

    dialog.get_by_label("New password").fill(NEW_PASSWORD)
    dialog.get_by_role("button", name="Change password").click()
    expect(dialog.locator("#password-done")).to_contain_text("Password changed")
    expect(dialog.locator("#password-error")).to_be_hidden()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    expect(phone.locator("#auth-view")).to_be_visible(timeout=WAIT_MS)
    for page in (laptop, laptop_tab):
        expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    assert me(local_stack, old_token).status_code == 401
    assert me(local_stack, session_token(laptop)).status_code == 200
    text = f"still here {uuid.uuid4().hex}"
    say(laptop, text)
    expect(message(laptop_tab, text)).to_have_count(1, timeout=WAIT_MS)
    expect(message(laptop, text)).to_have_attribute("data-id", re.compile(r"^\d+-\d+$"))
    login = local_stack["api_url"] + "/api/auth/login"
    assert httpx.post(login, json={"username": name, "password": PASSWORD}).status_code == 401
    assert httpx.post(login, json={"username": name, "password": NEW_PASSWORD}).status_code == 200


def test_log_out_everywhere_signs_out_every_browser_of_the_user_and_no_one_else(
    open_page, local_stack
) -> None:
    laptop, phone, bob = open_page(), open_page(), open_page()
    name = unique("alice")
    register(laptop, name)
    log_in(phone, name)
    register(bob, unique("bob"))
    tokens = [session_token(laptop), session_token(phone)]

    dialog = open_account(laptop)
    with laptop.expect_response(lambda r: r.url.endswith("/api/auth/logout")) as logout:
        dialog.get_by_role("button", name="Log out everywhere").click()
    assert logout.value.status == 200
    assert logout.value.request.post_data_json == {"everywhere": True}

    for page in (laptop, phone):
        expect(page.locator("#auth-view")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#chat-view")).to_be_hidden()
    expect(laptop.locator("#auth-error")).to_have_text("You logged out everywhere.")
    assert [me(local_stack, token).status_code for token in tokens] == [401, 401]
    expect(bob.locator("#status")).to_have_attribute("data-state", "online")
    assert me(local_stack, session_token(bob)).status_code == 200


def test_log_out_everywhere_tells_this_browsers_other_tabs_why_even_before_storage_does(
    open_page, local_stack
) -> None:
    """The server closes every socket of the user before it answers; a tab of
    the same browser that storage tells late still says it was signed out in
    another tab. A logout everywhere that fails takes that word back."""
    laptop = open_page()
    hold_storage_events = hearing_storage_late(laptop)
    laptop_tab = open_page(beside=laptop)
    register(laptop, unique("alice"))
    expect(laptop_tab.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)

    laptop_tab.route("**/api/auth/logout", lambda route: route.abort())
    dialog = open_account(laptop_tab)
    dialog.get_by_role("button", name="Log out everywhere").click()
    expect(dialog.get_by_text("Could not log out everywhere")).to_be_visible(timeout=WAIT_MS)
    assert signed_out_locks(laptop) == []
    laptop_tab.unroute("**/api/auth/logout")

    hold_storage_events()
    dialog.get_by_role("button", name="Log out everywhere").click()
    expect(laptop.locator("#auth-view")).to_be_visible(timeout=WAIT_MS)
    expect(laptop.locator("#auth-error")).to_have_text("You were signed out in another tab.")
    expect(laptop_tab.locator("#auth-error")).to_have_text("You logged out everywhere.")
