"""What the client is like to use, in Debian's Chromium against the local stack:
axe-core (bundled by axe-playwright-python, never fetched at run time) finds
nothing serious on any screen, in either theme, on a desktop and on a 360 px
phone; a keyboard alone goes from signing up to the account dialog; links in
messages are safe; nothing covers a message. Each screen is saved as a
screenshot in `AURORA_SCREENSHOTS` (a temporary folder unless set)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.support.browser import (
    PASSWORD,
    WAIT_MS,
    expect,
    message,
    register,
    say,
    unique,
)
from tests.support.files import png

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 740}}
# 200 % zoom of a 1280 x 800 window: the page lays out for half the CSS pixels.
ZOOMED = {"width": 640, "height": 400}


@pytest.fixture
def new_page(open_page) -> Callable:
    """A page in a browser of its own with the given viewport and system theme;
    fails the test on page errors."""

    def new(viewport: dict | None = None, color_scheme: str = "light"):
        return open_page(viewport=viewport or SIZES["desktop"], color_scheme=color_scheme)

    return new


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now."""
    results = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results
        if v["impact"] in ("serious", "critical")
    ]


def log_in(page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)


def test_every_screen_passes_axe_in_both_themes_on_a_desktop_and_a_phone(
    new_page, screenshots
) -> None:
    """Sign-in, chat and account screens: no serious or critical axe finding,
    and a screenshot of each, light and dark, 1280 px and 360 px wide."""
    name = unique("ana")
    found = {}
    for theme in ("light", "dark"):
        for size, viewport in SIZES.items():
            page = new_page(viewport, theme)
            suffix = f"{theme}-{size}"
            found[f"sign-in {suffix}"] = serious_violations(page)
            page.screenshot(path=screenshots / f"sign-in-{suffix}.png")
            if len(found) == 1:  # the first page
                register(page, name)
                say(page, "Welcome to #general! The notes are at https://example.com/notes.")
                say(page, "Shift+Enter starts a new line,\nEnter sends.")
            else:
                log_in(page, name)
            expect(message(page, "Enter sends.")).to_have_attribute("data-id", re.compile("-"))
            found[f"chat {suffix}"] = serious_violations(page)
            page.screenshot(path=screenshots / f"chat-{suffix}.png")
            page.get_by_role("button", name="Account").click()
            expect(page.get_by_role("dialog", name="Account")).to_be_visible()
            found[f"account {suffix}"] = serious_violations(page)
            page.screenshot(path=screenshots / f"account-{suffix}.png")
            page.context.close()
    assert {screen: v for screen, v in found.items() if v} == {}
    assert len(list(screenshots.glob("*.png"))) >= 12


def test_a_keyboard_alone_signs_up_sends_and_opens_the_account(new_page) -> None:
    """Tab, type and Enter only: register, send a two-line message
    (Shift+Enter), reach Account and leave it with Escape; focus is visible
    wherever it is. The controls have the names people and scripts look for,
    and messages are the items of a list."""
    page = new_page()
    keys = page.keyboard

    def tab_to(selector: str, back: bool = False) -> None:
        for _ in range(20):
            if page.evaluate(f"document.activeElement.matches({selector!r})"):
                outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", f"{selector} has focus but shows none"
                return
            keys.press("Shift+Tab" if back else "Tab")
        raise AssertionError(f"Tab never reached {selector}")

    for name in ("Register", "Log in"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_be_visible()
    expect(page.get_by_label("Username", exact=True)).to_be_focused()
    keys.type(unique("kai"))
    tab_to("#password")
    keys.type(PASSWORD)
    tab_to("#register")
    keys.press("Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "online", timeout=WAIT_MS)
    expect(page.get_by_role("heading", name="#general")).to_be_visible()
    composer = page.get_by_label("Message", exact=True)
    expect(composer).to_be_focused()
    first, second = f"first line {uuid.uuid4().hex}", "second line"
    keys.type(first)
    keys.press("Shift+Enter")
    keys.type(second)
    keys.press("Enter")
    sent = message(page, first)
    expect(sent.locator(".text")).to_have_text(f"{first}\n{second}")
    expect(sent).to_have_attribute("data-id", re.compile(r"^\d+-\d+$"))
    expect(composer).to_have_value("")
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_visible()
    items = page.get_by_role("list", name="Messages in #general").get_by_role("listitem")
    expect(items.filter(has_text=first)).to_have_count(1)

    tab_to("#account", back=True)
    keys.press("Enter")
    dialog = page.get_by_role("dialog", name="Account")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Current password")).to_be_focused()
    keys.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Account")).to_be_focused()


def test_links_in_messages_are_web_addresses_only_and_open_safely(new_page) -> None:
    page = new_page()
    register(page, unique("max"))
    text = (
        "docs at https://example.com/a_(b)?q=1&r=2. or http://example.org, "
        "not javascript:alert(1) nor data:text/html,<b>x</b> <img src=x onerror=alert(1)>"
    )
    say(page, text)
    body = message(page, "docs at").locator(".text")
    expect(body).to_have_text(text)
    links = body.locator("a")
    expect(links).to_have_count(2)
    assert [links.nth(i).get_attribute("href") for i in range(2)] == [
        "https://example.com/a_(b)?q=1&r=2",
        "http://example.org/",
    ]
    for i in range(2):
        assert links.nth(i).get_attribute("target") == "_blank"
        assert links.nth(i).get_attribute("rel") == "noopener noreferrer"
    expect(body.locator("img, b")).to_have_count(0)


def test_times_say_which_day_and_each_day_starts_with_a_divider(new_page) -> None:
    """Today's messages show the time, older ones the day too; the title has
    the full date; a divider names each day above its first message, also
    when an older day's message is put in above (scrollback)."""
    page = new_page()
    register(page, unique("noa"))
    say(page, "what day is it")
    time = message(page, "what day is it").locator("time")
    expect(time).to_have_text(re.compile(r"^\d\d:\d\d"))
    expect(time).to_have_attribute("title", re.compile(r"^Today, .*\d{4}"))
    dividers = page.locator("#messages .day-divider")
    expect(dividers).to_have_text(["Today"])
    page.evaluate(
        """async () => {
          const { arrange, insertInIdOrder, renderMessage } = await import("./render.js");
          const { active } = await import("./rooms.js");
          const ts = Date.now() - 40 * 86400000;
          const items = [1, 0].map((seq) => {
            const fields = { user: "x", text: `old ${seq}`, attachments: [], own: false };
            const item = renderMessage({ ...fields, ts });
            item.dataset.id = `${ts}-${seq}`;
            return item;
          });
          insertInIdOrder(active(), items);
          arrange(active());
        }"""
    )
    expect(dividers).to_have_count(2)
    expect(dividers.last).to_have_text("Today")
    first = page.locator("#messages > li").first
    expect(first).to_have_class("day-divider")
    expect(first).not_to_have_text(re.compile("Today|Yesterday"))
    assert page.locator("#messages > li").nth(1).text_content().endswith("old 0")
    labels = page.evaluate(
        """async () => {
          const { renderMessage } = await import("./render.js");
          const at = (daysAgo) => renderMessage({
            user: "x", text: "y", attachments: [], own: false, ts: Date.now() - daysAgo * 86400000,
          }).querySelector("time");
          return [at(1), at(40)].map((t) => [t.textContent, t.title]);
        }"""
    )
    (yesterday, yesterday_title), (older, _) = labels
    assert yesterday.startswith("Yesterday ") and yesterday_title.startswith("Yesterday, ")
    assert re.search(r"[A-Za-z]{3}", older) and not older.startswith(("Yesterday", "Today"))


def test_the_theme_follows_the_system_until_one_is_chosen_and_stays_chosen(new_page) -> None:
    page = new_page(color_scheme="dark")
    background = "getComputedStyle(document.body).backgroundColor"
    dark = page.evaluate(background)
    theme = page.get_by_label("Theme")
    expect(theme).to_have_value("system")
    theme.select_option("light")
    light = page.evaluate(background)
    assert light != dark
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_label("Theme")).to_have_value("light")
    assert page.evaluate(background) == light
    page.get_by_label("Theme").select_option("system")
    assert page.evaluate(background) == dark


@pytest.mark.parametrize("viewport", [SIZES["phone"], ZOOMED], ids=["phone", "zoom-200"])
def test_nothing_covers_a_message_and_nothing_scrolls_sideways(new_page, viewport) -> None:
    """On a 360 px phone and at 200 % zoom: *Load older messages* sits above
    the first message, the attachment error below the last, the composer in
    view, and the page never needs a sideways scroll."""
    page = new_page(viewport)
    register(page, unique("ola"))
    texts = [f"message {i} {uuid.uuid4().hex}" for i in range(6)]
    for text in texts:
        say(page, text)
    expect(message(page, texts[-1])).to_have_attribute("data-id", re.compile(r"^\d+-\d+$"))
    page.set_input_files(
        "#attach-input",
        files=[{"name": "tool.exe", "mimeType": "application/x-msdownload", "buffer": b"MZ"}],
    )
    expect(page.locator("#attach-error")).to_contain_text("tool.exe", timeout=WAIT_MS)

    def box(locator) -> dict:
        return locator.bounding_box()

    def visible_part(item) -> tuple[float, float]:
        """The top and bottom of an item where the message list shows it."""
        shown, listed = box(item), box(page.locator("#messages"))
        top = max(shown["y"], listed["y"])
        return top, min(shown["y"] + shown["height"], listed["y"] + listed["height"])

    page.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
    first = page.locator("#messages .message").first
    # The button, or the status that says the room's beginning is shown.
    above = page.locator("#load-older, #history-status").filter(visible=True).last
    older = box(above)
    assert visible_part(first)[0] >= older["y"] + older["height"]
    page.locator("#messages").evaluate("list => { list.scrollTop = list.scrollHeight; }")
    error = box(page.locator("#attach-error"))
    assert visible_part(message(page, texts[-1]))[1] <= error["y"]
    page.get_by_label("Message", exact=True).focus()  # scrolls the page to it if need be
    composer, listed = box(page.get_by_label("Message", exact=True)), box(page.locator("#messages"))
    assert composer["y"] + composer["height"] <= viewport["height"]
    assert listed["y"] >= 0 and listed["height"] >= 48  # messages in view beside it
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


def test_an_image_gets_a_box_of_its_own_size_before_it_loads(new_page) -> None:
    """The sender measures the image; a reader's page sizes its box from that
    before fetching it, so a small image is not lost in a big empty box and a
    large one is scaled down to fit, with its shape."""
    alice, bob = new_page(), new_page()
    register(alice, unique("pia"))
    register(bob, unique("quinn"))
    files = [
        {"name": f"{unique('small')}.png", "mimeType": "image/png", "buffer": png(40, 30)},
        {"name": f"{unique('large')}.png", "mimeType": "image/png", "buffer": png(800, 400)},
    ]
    alice.set_input_files("#attach-input", files=files)
    expect(alice.locator('#staged .chip[data-state="ready"]')).to_have_count(2, timeout=WAIT_MS)
    text = f"two pictures {uuid.uuid4().hex}"
    say(alice, text)
    previews = message(bob, text).locator(".attachment-preview")
    expect(previews).to_have_count(2, timeout=WAIT_MS)
    sizes = [previews.nth(i).bounding_box() for i in range(2)]
    assert [(round(s["width"]), round(s["height"])) for s in sizes] == [(40, 30), (320, 160)]
    expect(previews.locator("img")).to_have_count(2, timeout=WAIT_MS)
    expect(previews.nth(0).locator("img")).to_have_js_property("naturalWidth", 40)
    after = [previews.nth(i).bounding_box() for i in range(2)]
    assert [(round(s["width"]), round(s["height"])) for s in after] == [(40, 30), (320, 160)]
