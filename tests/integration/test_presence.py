"""Presence on real Redis, SecantusDB and fan-out replicas (one of them a
process, killed): a snapshot after `joined`, then changes; a user with several
connections is online once; a killed replica's users go offline within the
expiry; at most one change per user per second reaches a member; a room with
10,000 online costs a joiner one small frame; blocked users stay out."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from aurora import presence
from aurora.backends import layout, redis_client
from aurora.settings import Settings
from fanout.hub import PRESENCE_BATCH_S
from local.runtime import LocalFunction
from local.servers import free_port, wait_for_port
from tests.conftest import on_single_and_cluster
from tests.support import ROOT
from tests.support.events import template_function
from tests.support.fanout import receive_json, replica, send_json
from tests.support.rooms import Person, answer, client, person, rest

TTL = 3.0  # PRESENCE_TTL_SECONDS here: a killed replica's users are offline within it


@pytest.fixture
def cfg(app_env: Settings) -> Iterator[Settings]:
    yield dataclasses.replace(app_env, presence_ttl_seconds=TTL, membership_check_seconds=2.0)


@pytest.fixture
def api(cfg: Settings) -> Iterator[LocalFunction]:
    fn = template_function("MessagesFunction", concurrency=1)
    yield fn
    fn.close()


async def join(ws, who: Person, room: str) -> dict:
    """Join; returns the presence snapshot that follows `joined`."""
    await send_json(ws, {"type": "join", "room": room})
    assert (await answer(ws, who))["type"] == "joined"
    return await next_presence(ws)


async def next_presence(ws, timeout: float = 3.0) -> dict:
    while True:
        frame = await receive_json(ws, timeout, presence=True)
        if frame["type"] == "presence":
            return frame


async def presence_frames(ws, seconds: float) -> list[tuple[float, dict]]:
    """Every presence frame that arrives within `seconds`, with its arrival time."""
    got, loop = [], asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            frame = await receive_json(ws, left, presence=True)
        except TimeoutError:
            break
        if frame["type"] == "presence":
            got.append((loop.time(), frame))
    return got


async def presence_frames_until_quiet(
    ws, at_least: int, quiet: float = 1.5, limit: float = 30.0
) -> list[tuple[float, dict]]:
    """Every presence frame with its arrival time, until `at_least` have come
    and then none for `quiet` seconds (a loaded machine: at most `limit`)."""
    got, loop = [], asyncio.get_running_loop()
    deadline = loop.time() + limit
    while (left := deadline - loop.time()) > 0:
        try:
            frame = await receive_json(ws, min(left, quiet) if len(got) >= at_least else left,
                                       presence=True)  # fmt: skip
        except TimeoutError:
            break
        if frame["type"] == "presence":
            got.append((loop.time(), frame))
    return got


def online(frame: dict) -> list[str]:
    return sorted(p["user"] for p in frame["online"])


async def test_a_snapshot_then_changes_and_several_tabs_are_online_once(cfg, api):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    async with replica(cfg) as (url_a, _), replica(cfg) as (url_b, _):
        ws_alice = await client(url_a, alice)
        first = await join(ws_alice, alice, "lobby")
        assert first == {"type": "presence", "room": "lobby", "count": 1,
                         "online": [{"user": "alice", "user_id": alice.user_id}],
                         "more": False}  # fmt: skip
        tab1 = await client(url_b, bob)
        assert online(await join(tab1, bob, "lobby")) == ["alice", "bob"]
        change = await next_presence(ws_alice)
        assert change == {"type": "presence", "room": "lobby", "count": 2, "user": "bob",
                          "user_id": bob.user_id, "status": "online"}  # fmt: skip
        # A second tab, on the other replica: nothing changes; closing one neither.
        tab2 = await client(url_a, bob)
        assert (await join(tab2, bob, "lobby"))["count"] == 2
        await tab1.close()
        assert await presence_frames(ws_alice, 1.2) == []
        status, body = rest(api, "GET", "/api/rooms/lobby/presence", alice)
        assert status == 200 and sorted(p["user"] for p in body["online"]) == ["alice", "bob"]
        assert body["count"] == 2 and "next" not in body
        # The last tab closes: offline.
        await tab2.close()
        change = await next_presence(ws_alice)
        assert (change["user"], change["status"], change["count"]) == ("bob", "offline", 1)
        await ws_alice.close()
    # A graceful shutdown lets go at once.
    assert rest(api, "GET", "/api/rooms/lobby/presence", alice)[1] == {"online": [], "count": 0}


class ReplicaProcess:
    """A fan-out replica as a process of its own (`python -m fanout`)."""

    def __init__(self, cfg: Settings, log_path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "FANOUT_"))}
        env |= {"AURORA_ENV": "local", "REDIS_URL": cfg.redis_url, "JWT_SECRET": cfg.jwt_secret,
                "FANOUT_HOST": "127.0.0.1", "FANOUT_PORT": str(self.port),
                "PRESENCE_TTL_SECONDS": str(TTL)}  # fmt: skip
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "fanout"], cwd=ROOT, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        wait_for_port(self.port, self.process, timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)  # no goodbye, nothing let go
            self.process.wait(10)


@on_single_and_cluster
async def test_a_fresh_redis_without_the_presence_scripts_gets_them_loaded(cfg):
    """A new or restarted Redis knows no script: the replica loads them,
    on a cluster too, where a pipeline cannot."""
    alice = person(cfg, "alice")
    async with replica(cfg) as (url, _):
        redis_client(cfg.redis_url).script_flush()  # on every primary of a cluster
        ws = await client(url, alice)
        assert online(await join(ws, alice, "lobby")) == ["alice"]
        await ws.close()


async def test_a_killed_replicas_users_go_offline_within_the_expiry(cfg, api, tmp_path):
    alice, bob, carol = person(cfg, "alice"), person(cfg, "bob"), person(cfg, "carol")
    doomed = ReplicaProcess(cfg, tmp_path / "doomed.log")
    try:
        async with replica(cfg) as (url, _):
            ws_alice = await client(url, alice)
            await join(ws_alice, alice, "lobby")
            gone = []
            for who in (bob, carol):
                gone.append(await client(f"ws://127.0.0.1:{doomed.port}", who))
                await join(gone[-1], who, "lobby")
                assert (await next_presence(ws_alice))["status"] == "online"
            await asyncio.sleep(TTL / 2)  # refreshed at least once meanwhile
            doomed.kill()
            killed_at = time.monotonic()
            offline = set()
            while len(offline) < 2:
                change = await next_presence(ws_alice, timeout=TTL + 1)
                assert change["status"] == "offline"
                offline.add(change["user"])
            assert time.monotonic() - killed_at <= TTL
            assert offline == {"bob", "carol"}
            body = rest(api, "GET", "/api/rooms/lobby/presence", alice)[1]
            assert [p["user"] for p in body["online"]] == ["alice"]
            for ws in (ws_alice, *gone):
                await ws.close()
    finally:
        doomed.kill()


class LoopStalls:
    """The longest time this event loop was held from a task that wanted to
    run: the replicas, the storm's clients and the watcher share the loop, so
    a stall delays when a change is written and when it is read."""

    TICK = 0.01

    def __init__(self) -> None:
        self.longest = 0.0
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.TICK)
            self.longest = max(self.longest, loop.time() - started - self.TICK)

    def stop(self) -> float:
        self._task.cancel()
        return self.longest


async def test_a_reconnect_storm_reaches_a_member_as_one_change_per_user_per_second(cfg):
    watcher = person(cfg, "watcher")
    storm = [person(cfg, f"user{i}") for i in range(30)]
    async with replica(cfg) as (url_a, _), replica(cfg) as (url_b, _):
        ws = await client(url_a, watcher)
        await join(ws, watcher, "arena")
        # Read without a pause: arrival times are what the assertions measure.
        listening = asyncio.create_task(presence_frames_until_quiet(ws, at_least=len(storm)))
        stalls = LoopStalls()

        async def flap(who: Person, i: int):
            for round_ in range(3):  # connect, join, drop: three times within a second
                conn = await client(url_b if (i + round_) % 2 else url_a, who)
                await send_json(conn, {"type": "join", "room": "arena"})
                await answer(conn, who)
                await conn.close()
            final = await client(url_b, who)  # ...and back for good
            await join(final, who, "arena")
            return final

        finals = await asyncio.gather(*(flap(who, i) for i, who in enumerate(storm)))
        frames = await listening
        stalled = stalls.stop()
        # Changes go out batched with others': everyone hears of a late
        # joiner, and nobody, the late joiner included, hears of themselves.
        late = person(cfg, "late")
        late_ws = await client(url_b, late)
        await join(late_ws, late, "arena")
        heard = await asyncio.gather(*(presence_frames(c, 1.0) for c in (late_ws, *finals)))
        for who, got in zip((late, *storm), heard, strict=True):
            assert all(frame.get("user") != who.name for _, frame in got), (who, got)
        for got in heard[1:]:
            assert any(frame.get("user") == "late" for _, frame in got), got
        await late_ws.close()
        for conn in (ws, *finals):
            await conn.close()
    by_user: dict[str, list[tuple[float, str]]] = {}
    for at, frame in frames:
        by_user.setdefault(frame["user"], []).append((at, frame["status"]))
    # Decided a second apart at least, then written with the next batch of
    # changes, and read here: a stall can delay the first write and the first
    # read, so two changes can arrive up to two stalls closer than they were
    # decided. On a quiet loop, 0.2 s of jitter is allowed.
    least = min(0.8, 1.0 - PRESENCE_BATCH_S - 2 * stalled - 0.05)
    for user, seen in by_user.items():
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
        assert all(gap >= least for gap in gaps), (user, seen, f"longest stall {stalled:.3f} s")
        assert seen[-1][1] == "online", (user, seen)
    assert set(by_user) == {who.name for who in storm}
    # Fewer frames than changes: the storm was 7 changes per user.
    assert len(frames) <= 3 * len(storm)


async def test_joining_a_room_with_10000_online_writes_one_small_snapshot(cfg, api):
    alice = person(cfg, "alice")
    cache, lay = redis_client(cfg.redis_url), layout(cfg)
    scripts = presence.Scripts(cache)
    for source in presence.Scripts.SOURCES:  # a cluster pipeline does not load them
        cache.script_load(source)
    pipe = cache.pipeline(transaction=False)
    for i in range(10_000):  # held by another replica
        keys, args = presence.hold_call("stadium", f"u{i:05d}", f"fan{i}", "elsewhere", 60_000, lay)
        scripts.hold(keys=keys, args=args, client=pipe)
    pipe.execute()
    async with replica(cfg) as (url, _):
        ws = await client(url, alice)
        await send_json(ws, {"type": "join", "room": "stadium"})
        assert (await answer(ws, alice))["type"] == "joined"
        raw = await asyncio.wait_for(ws.recv(), 3)
        snapshot = json.loads(raw)
        assert snapshot["type"] == "presence" and snapshot["count"] == 10_001
        assert len(snapshot["online"]) == presence.SNAPSHOT_SIZE and snapshot["more"] is True
        assert len(raw) < 4096
        await ws.close()
    # REST pages through all of them.
    seen, cursor = set(), None
    while True:
        query = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
        status, body = rest(api, "GET", "/api/rooms/stadium/presence", alice, **query)
        assert status == 200 and len(body["online"]) <= 1000
        seen |= {p["user_id"] for p in body["online"]}
        cursor = body.get("next")
        if cursor is None:
            break
    assert len(seen) == 10_000


async def test_presence_is_for_readers_and_a_blocked_user_stays_out_of_the_dm(cfg, api):
    alice, bob, eve = person(cfg, "alice"), person(cfg, "bob"), person(cfg, "eve")
    assert (
        rest(api, "POST", "/api/rooms", alice, {"room": "den", "visibility": "private"})[0] == 201
    )
    dm = rest(api, "POST", "/api/dms", alice, {"username": "bob"})[1]["room"]["room"]
    assert rest(api, "PUT", "/api/blocks/bob", alice)[0] == 200
    async with replica(cfg) as (url, _):
        ws_alice, ws_bob, ws_eve = [await client(url, w) for w in (alice, bob, eve)]
        assert online(await join(ws_alice, alice, dm)) == ["alice"]
        assert online(await join(ws_bob, bob, dm)) == ["alice"]  # bob reads, isn't shown
        assert await presence_frames(ws_alice, 1.2) == []
        assert rest(api, "GET", f"/api/rooms/{dm}/presence", alice)[1]["count"] == 1
        # A non-reader: refused, and nothing of who is there.
        await join(ws_alice, alice, "den")
        await send_json(ws_eve, {"type": "join", "room": "den"})
        assert (await receive_json(ws_eve))["code"] == "forbidden"
        assert await presence_frames(ws_eve, 0.5) == []
        assert rest(api, "GET", "/api/rooms/den/presence", eve)[1]["code"] == "forbidden"
        # Unblocked: bob shows up at once.
        assert rest(api, "DELETE", "/api/blocks/bob", alice)[0] == 200
        change = await next_presence(ws_alice)
        assert (change["room"], change["user"], change["status"]) == (dm, "bob", "online")
        for ws in (ws_alice, ws_bob, ws_eve):
            await ws.close()
