"""How fast the browser client switches rooms, scrolls a long history and
keeps up with a busy room, in Debian's Chromium against the local stack.

By default a signed-in page is given ROOMS rooms of PER_ROOM messages each
(rendered by the client's own modules, as a replay would) and prints the
time from choosing a room in the sidebar to the next painted frame (median
and worst over every switch).

With --stored N, the app's own path: N messages are sent to a room and
stored, and the page scrolls up through them as a reader would (pages from
the history API, the list a window of about 500).

With --live N, N messages arrive into the open room at --rate a second
(one writer standing for many people) while the reader stays at the newest.

Both count the main-thread tasks over 50 ms twice: by the page's own
observer (PerformanceObserver "longtask", wall time, which a loaded machine
stretches) and by CPU time, from a Chromium trace.

    python bench/client_rooms.py --rooms 50 --per-room 200
    python bench/client_rooms.py --stored 10000
    python bench/client_rooms.py --live 10000 --rate 500
    python bench/client_rooms.py --stored 2000 --profile scroll.cpuprofile

--profile also records a CPU profile of the scroll (with --stored), of the
arrivals (with --live) or of the room switches (Chromium's Profiler over
CDP), writes it for DevTools' Performance panel and prints the functions
with the most self time.
--explain prints, for each task over 50 ms of wall time, what it was spent
on (script by function, style, layout, paint, GC), from the trace; --trace
FILE writes that trace's events.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(ROOT))

from fanout_load import ONE_SENDER_FOR_MANY  # noqa: E402  (bench/, first on the path)

# Build the rooms inside the page with its own modules: each message goes
# through renderFrame, the lists are arranged once (dividers, groups).
FILL = """async ({ rooms, perRoom }) => {
  const { roomState, roomsChanged } = await import("./rooms.js");
  const { renderFrame, arrange } = await import("./render.js");
  const fill = (room, count) => {
    const state = roomState(room);
    state.lastId = `${Date.now()}-0`;
    const start = Date.now() - count * 30000;
    const items = [];
    for (let i = 0; i < count; i += 1) {
      const ts = start + i * 30000;
      const frame = { id: `${ts}-0`, room, user: `user${i % 7}`, user_id: `u${i % 7}`,
                      text: `message ${i} in ${room}: ` + "words ".repeat(i % 40), ts };
      const item = renderFrame(frame, { own: false, attachments: false });
      item.dataset.id = frame.id;
      items.push(item);
    }
    state.list.append(...items);
    state.newestId = `${start + (count - 1) * 30000}-0`;
    state.history.end = true;
    arrange(state);
  };
  for (let r = 0; r < rooms; r += 1) fill(`bench-${r}`, perRoom);
  roomsChanged(`bench-0`);
}"""

# For comparison: every message skipped by layout until near the view
# (content-visibility: auto), in every room's list.
SKIP_OFFSCREEN = """async () => {
  const { allRooms } = await import("./rooms.js");
  for (const state of allRooms()) {
    for (const item of state.list.querySelectorAll(".message")) {
      item.style.contentVisibility = "auto";
      item.style.containIntrinsicSize = "auto 64px";
    }
  }
}"""

SWITCH = """async (rooms) => {
  const times = [];
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  for (const room of rooms) {
    const button = document.querySelector(`#sidebar button[data-room="${room}"]`);
    const start = performance.now();
    button.click();
    await frame();
    times.push(performance.now() - start);
  }
  return times;
}"""

# The page's own long-task observer, from now on (read back by LONG_TASKS).
WATCH = """() => {
  window.benchLong = [];
  const note = (list) => window.benchLong.push(...list.getEntries().map((e) => e.duration));
  new PerformanceObserver(note).observe({ type: "longtask", buffered: false });
}"""
LONG_TASKS = "() => window.benchLong"

# Scroll to the top again and again until the room's beginning shows.
SCROLL_BACK = """async () => {
  const long = [];
  new PerformanceObserver((list) => long.push(...list.getEntries().map((e) => e.duration)))
    .observe({ type: "longtask", buffered: false });
  const status = document.getElementById("history-status");
  const started = performance.now();
  let most = 0;
  const done = () => status.textContent.startsWith("This is the beginning");
  while (!done() && performance.now() - started < 600000) {
    const list = document.getElementById("messages");
    list.scrollTop = 0;
    most = Math.max(most, list.querySelectorAll(".message").length);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { long, most, seconds: (performance.now() - started) / 1000 };
}"""


@contextmanager
def writer(stack: dict, room: str) -> Iterator[tuple[object, str]]:
    """A new user, signed in and joined to `room`: (their socket, their token)."""
    import httpx
    from websockets.sync.client import connect

    creds = {"username": f"writer_{uuid.uuid4().hex[:8]}", "password": "correct-horse-battery"}
    api = stack["api_url"]
    httpx.post(f"{api}/api/auth/register", json=creds, timeout=10).raise_for_status()
    token = httpx.post(f"{api}/api/auth/login", json=creds, timeout=10).json()["token"]
    with connect(stack["ws_url"], subprotocols=["aurora.v1", f"bearer.{token}"]) as ws:
        ws.recv(10)
        ws.send(json.dumps({"type": "join", "room": room}))
        ws.recv(10)
        yield ws, token


def store(stack: dict, room: str, count: int) -> None:
    """Send `count` messages to `room` as a new user; back once all are stored."""
    import httpx

    api = stack["api_url"]
    with writer(stack, room) as (ws, token):
        for i in range(count):
            ws.send(json.dumps({"type": "message", "room": room, "text": f"stored {i}"}))
        seen = 0
        while seen < count:
            frame = json.loads(ws.recv(30))
            if frame.get("type") == "error":
                raise RuntimeError(f"a send was refused: {frame}")
            seen += frame.get("type") == "message"
    auth = {"Authorization": f"Bearer {token}"}
    while True:  # the drain stores them about a second later
        page = httpx.get(f"{api}/api/rooms/{room}/messages", params={"limit": 1}, headers=auth)
        if page.json()["messages"] and page.json()["messages"][0]["text"] == f"stored {count - 1}":
            return
        time.sleep(0.5)


@contextmanager
def main_thread_tasks(
    browser, page, explain: bool = False, save_to: Path | None = None
) -> Iterator[list[tuple[float, float]]]:
    """The page's main-thread tasks while inside, as (wall ms, CPU ms), from
    a Chromium trace. A loaded machine stretches a task's wall time (the
    thread waits for a core), not its CPU time: the pair tells the two apart."""
    tasks: list[tuple[float, float]] = []
    categories = ["disabled-by-default-devtools.timeline"]
    if explain or save_to:  # where each long task went: script, style, layout, GC
        categories += ["devtools.timeline", "v8", "blink", "disabled-by-default-v8.gc"]
    browser.start_tracing(page=page, categories=categories)
    try:
        yield tasks
    finally:
        events = json.loads(browser.stop_tracing())["traceEvents"]
        mains = {
            (e["pid"], e["tid"])
            for e in events
            if e.get("ph") == "M" and e["name"] == "thread_name"
            and e["args"].get("name") == "CrRendererMain"
        }  # fmt: skip
        runs = [
            e for e in events
            if e.get("ph") == "X" and e["name"] == "RunTask" and "tdur" in e
            and (e["pid"], e["tid"]) in mains
        ]  # fmt: skip
        busy: dict[tuple, list] = {}
        for e in runs:
            busy.setdefault((e["pid"], e["tid"]), []).append((e["dur"] / 1000, e["tdur"] / 1000))
        # The page's renderer is the busiest one.
        tasks.extend(max(busy.values(), key=lambda ts: sum(c for _, c in ts), default=[]))
        if explain:
            print_long_tasks(events, runs)
        if save_to is not None:
            save_to.write_text(json.dumps(events))


SPLIT = ("RunTask", "ThreadControllerImpl::RunTask")  # the tasks themselves


def print_long_tasks(events: list[dict], runs: list[dict], over_ms: float = 50) -> None:
    """What each task over `over_ms` of wall time spent it on: its slices by
    name (script, style, layout, paint, GC...), the biggest first."""
    for task in (t for t in runs if t["dur"] / 1000 > over_ms):
        start, end, where = task["ts"], task["ts"] + task["dur"], (task["pid"], task["tid"])
        inside: dict[str, float] = {}
        for e in events:
            if (
                e.get("ph") == "X" and (e["pid"], e["tid"]) == where and e is not task
                and start <= e["ts"] < end and e["name"] not in SPLIT
            ):  # fmt: skip
                name = e["name"]
                if name == "FunctionCall":
                    name += " " + e["args"].get("data", {}).get("functionName", "")
                inside[name] = inside.get(name, 0) + e["dur"] / 1000
        top = sorted(inside.items(), key=lambda item: -item[1])[:8]
        cpu = task["tdur"] / 1000
        print(f"task {task['dur'] / 1000:.1f} ms wall, {cpu:.1f} ms CPU:", file=sys.stderr)
        for name, ms in top:
            print(f"    {ms:8.1f} ms  {name}", file=sys.stderr)


def over_50ms(tasks: list[tuple[float, float]]) -> dict:
    """Tasks over 50 ms and the longest, by CPU time (see main_thread_tasks)."""
    cpu = [c for _, c in tasks]
    return {"over_50ms": sum(c > 50 for c in cpu), "longest_ms": round(max(cpu, default=0), 1)}


def start_profile(page):
    """A CPU profile of the page from now on (sampled every 200 µs)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    return cdp


def stop_profile(cdp, path: Path, top: int = 15) -> list[str]:
    """Write the profile to `path`; the `top` functions by self time."""
    profile = cdp.send("Profiler.stop")["profile"]
    path.write_text(json.dumps(profile))
    nodes = {node["id"]: node for node in profile["nodes"]}
    deltas = dict.fromkeys(nodes, 0)
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        deltas[sample] += delta
    self_us: dict[str, int] = {}
    for node_id, us in deltas.items():
        frame = nodes[node_id]["callFrame"]
        url = frame["url"].rsplit("/", 1)[-1]
        where = f"{frame['functionName'] or '(anonymous)'} {url}:{frame['lineNumber'] + 1}"
        name = where if url else frame["functionName"]
        self_us[name] = self_us.get(name, 0) + us
    ranked = sorted(self_us.items(), key=lambda item: -item[1])[:top]
    return [f"{us / 1000:9.1f} ms  {name}" for name, us in ranked]


MACHINE = f"{platform.machine()}, {platform.system()}, Chromium headless"


@contextmanager
def signed_in_page(prepare=None, **settings: str) -> Iterator[tuple]:
    """(stack, browser, page): a fresh local stack, `prepare(stack)` run on
    it, and a page signed in to it."""
    from playwright.sync_api import expect, sync_playwright

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, register
    from tests.support.servers import running_stack

    with (
        tempfile.TemporaryDirectory() as data,
        running_stack(Path(data), **settings) as stack,
        sync_playwright() as p,
    ):
        if prepare is not None:
            prepare(stack)
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(stack["frontend_url"])
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        register(page, f"bench_{uuid.uuid4().hex[:8]}")
        try:
            yield stack, browser, page
        finally:
            browser.close()


def long_tasks(observed: list[float], tasks: list[tuple[float, float]]) -> dict:
    return {
        "long_tasks_over_50ms": len(observed),
        "longest_task_ms": round(max(observed, default=0), 1),
        "cpu_time_tasks": over_50ms(tasks),
    }


def scroll_stored(count: int, profile: Path | None, explain: bool, save_to: Path | None) -> dict:
    from playwright.sync_api import expect

    stored = signed_in_page(lambda stack: store(stack, "general", count), **ONE_SENDER_FOR_MANY)
    with stored as (_, browser, page):
        expect(page.locator("#messages .message").first).to_be_visible()
        cdp = start_profile(page) if profile else None
        with main_thread_tasks(browser, page, explain, save_to) as tasks:
            result = page.evaluate(SCROLL_BACK)
        hot = stop_profile(cdp, profile) if cdp else []
    for line in hot:
        print(line, file=sys.stderr)
    return {
        "machine": MACHINE,
        "stored_messages": count,
        "seconds_to_the_beginning": round(result["seconds"], 1),
        "most_messages_in_the_list": result["most"],
        **long_tasks(result["long"], tasks),
    }


def send_live(stack: dict, room: str, count: int, rate: float) -> float:
    """Send `count` messages to `room` at `rate` a second as a new user,
    reading the echoes as they come; the seconds it took."""
    with writer(stack, room) as (ws, _):
        started = time.monotonic()
        for i in range(count):
            ahead = started + i / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            ws.send(json.dumps({"type": "message", "room": room, "text": f"live {i}"}))
            while True:  # keep our own inbox empty: a reader who lags is closed
                try:
                    frame = json.loads(ws.recv(0))
                except TimeoutError:
                    break
                if frame.get("type") == "error":
                    raise RuntimeError(f"a send was refused: {frame}")
        return time.monotonic() - started


def live_arrivals(
    count: int, rate: float, profile: Path | None, explain: bool, save_to: Path | None
) -> dict:
    """The reader at the newest message while `count` arrive at `rate` a second."""
    from playwright.sync_api import expect

    with signed_in_page(**ONE_SENDER_FOR_MANY) as (stack, browser, page):
        page.evaluate(WATCH)
        cdp = start_profile(page) if profile else None
        with main_thread_tasks(browser, page, explain, save_to) as tasks:
            seconds = send_live(stack, "general", count, rate)
            last = page.locator("#messages .message").last
            expect(last).to_have_text(re.compile(f"live {count - 1}$"), timeout=60000)
            observed = page.evaluate(LONG_TASKS)
            shown = page.locator("#messages .message").count()
        hot = stop_profile(cdp, profile) if cdp else []
    for line in hot:
        print(line, file=sys.stderr)
    return {
        "machine": MACHINE,
        "live_messages": count,
        "rate_per_second_asked": rate,
        "rate_per_second_sent": round(count / seconds, 1),
        "messages_in_the_list_after": shown,
        **long_tasks(observed, tasks),
    }


def switch_rooms(args) -> dict:
    with signed_in_page() as (_, browser, page):
        page.evaluate(FILL, {"rooms": args.rooms, "perRoom": args.per_room})
        if args.skip_offscreen:
            page.evaluate(SKIP_OFFSCREEN)
        page.wait_for_timeout(300)
        rooms = [f"bench-{r}" for r in range(args.rooms)] * 2
        cdp = start_profile(page) if args.profile else None
        with main_thread_tasks(browser, page, args.explain, args.trace) as switch_tasks:
            switches = sorted(page.evaluate(SWITCH, rooms))
        for line in stop_profile(cdp, args.profile) if cdp else []:
            print(line, file=sys.stderr)
    return {
        "machine": MACHINE,
        "rooms": args.rooms,
        "skip_offscreen": args.skip_offscreen,
        "messages_per_room": args.per_room,
        "switch_to_paint_ms_median": round(switches[len(switches) // 2], 1),
        "switch_to_paint_ms_worst": round(switches[-1], 1),
        "switch_cpu_time_tasks": over_50ms(switch_tasks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--per-room", type=int, default=200)
    parser.add_argument(
        "--stored", type=int, default=0, help="scroll back through N stored messages instead"
    )
    parser.add_argument(
        "--live", type=int, default=0, help="N messages arriving into the open room instead"
    )
    parser.add_argument("--rate", type=float, default=500, help="messages a second, with --live")
    parser.add_argument(
        "--skip-offscreen",
        action="store_true",
        help="for comparison: content-visibility: auto on every message",
    )
    parser.add_argument("--profile", type=Path, help="write a CPU profile of the measured part")
    parser.add_argument(
        "--explain", action="store_true", help="print what each task over 50 ms was spent on"
    )
    parser.add_argument(
        "--trace", type=Path, help="write the measured part's trace events here (JSON)"
    )
    args = parser.parse_args()
    if args.stored:
        figures = scroll_stored(args.stored, args.profile, args.explain, args.trace)
    elif args.live:
        figures = live_arrivals(args.live, args.rate, args.profile, args.explain, args.trace)
    else:
        figures = switch_rooms(args)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
