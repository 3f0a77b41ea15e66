"""Delivered and read cursors and unread counts, on real Redis, SecantusDB and
a fan-out replica: cursors only move forward whatever the order of the
frames, receipts reach the room live, and `GET /api/rooms` counts exactly
the messages by others, not deleted, after the read cursor."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from aurora import receipts
from aurora.backends import database
from aurora.settings import Settings
from local.runtime import LocalFunction
from tests.conftest import on_single_and_cluster
from tests.support.chat import Client, client, drain, person, rest
from tests.support.events import template_function
from tests.support.fanout import receive_json, replica


@pytest.fixture
def cfg(app_env: Settings) -> Settings:
    return dataclasses.replace(app_env, rate_limit_messages=1000, user_message_burst=10_000)


@pytest.fixture
def api(cfg: Settings) -> Iterator[LocalFunction]:
    fn = template_function("MessagesFunction", concurrency=1)
    yield fn
    fn.close()


async def send(who: Client, room: str, n: int, text: str = "m") -> list[str]:
    return [
        (await who.request({"type": "message", "room": room, "text": f"{text}{i}"}))["id"]
        for i in range(n)
    ]


async def receipt(who: Client, user_id: str) -> dict:
    """The next receipt frame about `user_id`."""
    while True:
        frame = await receive_json(who.ws)
        if frame["type"] == "receipt" and frame["user_id"] == user_id:
            return frame


async def test_a_direct_message_goes_sent_delivered_read_live_and_cursors_never_go_back(cfg, api):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    status, dm = rest(api, "POST", "/api/dms", alice, {"username": "bob"})
    assert status == 200, dm
    room = dm["room"]["room"]
    async with replica(cfg) as (url, _):
        a, b = await client(url, alice, room), await client(url, bob, room)
        ids = await send(a, room, 5)
        # Bob's client confirms receipt of the first three, then reads two:
        # alice sees each step of her messages' status, live.
        await b.ws.send(f'{{"type": "delivered", "room": "{room}", "id": "{ids[2]}"}}')
        assert await receipt(a, bob.user_id) == {
            "type": "receipt", "room": room, "user": "bob", "user_id": bob.user_id,
            "read": None, "delivered": ids[2],
        }  # fmt: skip
        await b.ws.send(f'{{"type": "read", "room": "{room}", "id": "{ids[1]}"}}')
        got = await receipt(a, bob.user_id)
        assert (got["read"], got["delivered"]) == (ids[1], ids[2])
        # Reordered and replayed frames never move a cursor back.
        for message_id in (ids[4], ids[0], ids[3], ids[4], ids[2]):
            await b.ws.send(f'{{"type": "read", "room": "{room}", "id": "{message_id}"}}')
        got = await receipt(a, bob.user_id)
        assert (got["read"], got["delivered"]) == (ids[4], ids[4])
        # Nor does a stale one over REST; the answer says where the cursors are.
        status, body = rest(api, "POST", f"/api/rooms/{room}/read", bob, {"id": ids[0]})
        assert (status, body) == (200, {"moved": False, "read": ids[4], "delivered": ids[4]})
        status, body = rest(api, "GET", f"/api/rooms/{room}/receipts", alice)
        assert body["receipts"] == [{"user_id": bob.user_id, "read": ids[4],
                                     "delivered": ids[4]}]  # fmt: skip
        for who in (a, b):
            await who.ws.close()
    drain(cfg)
    stored = database(cfg)[receipts.CURSORS].find_one({"_id": f"{room}/{bob.user_id}"})
    assert stored["read"].endswith(f" {ids[4]}") and stored["delivered"].endswith(f" {ids[4]}")


async def test_unread_counts_are_exact_across_pages_and_after_deletes(cfg, api):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    rooms = ["r1", "r2", "r3"]
    for room in rooms:
        assert (
            rest(api, "POST", "/api/rooms", bob, {"room": room, "visibility": "private"})[0] == 201
        )
        assert rest(api, "PUT", f"/api/rooms/{room}/members/alice", bob)[0] == 200
    async with replica(cfg) as (url, _):
        a, b = await client(url, alice), await client(url, bob)
        for room in rooms:
            for who in (a, b):
                assert (await who.join(room))["type"] == "joined"
        by_bob = {room: await send(b, room, 10 + i) for i, room in enumerate(rooms)}
        by_alice = await send(a, "r1", 3)
        # In r1 alice reads up to bob's 4th message, then bob deletes his 2nd
        # (before her cursor: no change) and his 8th (after it: one less), and
        # alice deletes one of hers (never counted anyway).
        await a.ws.send(f'{{"type": "read", "room": "r1", "id": "{by_bob["r1"][3]}"}}')
        await receipt(b, alice.user_id)
        for who, message in ((b, by_bob["r1"][1]), (b, by_bob["r1"][7]), (a, by_alice[0])):
            assert (await who.request({"type": "delete", "room": "r1", "id": message}))[
                "type"
            ] == "ack"
        # In r3 alice has read everything.
        await a.ws.send(f'{{"type": "read", "room": "r3", "id": "{by_bob["r3"][-1]}"}}')
        await receipt(b, alice.user_id)
        for who in (a, b):
            await who.ws.close()
    drain(cfg)

    listed, cursor = {}, None
    while True:  # one room per page
        query = {"limit": "1"} | ({"cursor": cursor} if cursor else {})
        status, page = rest(api, "GET", "/api/rooms", alice, **query)
        assert status == 200, page
        listed |= {r["room"]: (r["unread"], r["read"]) for r in page["rooms"]}
        if not (cursor := page["next_cursor"]):
            break
    assert listed == {
        "r1": (10 - 4 - 1, by_bob["r1"][3]),  # bob's 10, minus 4 read, minus 1 deleted after
        "r2": (11, None),
        "r3": (0, by_bob["r3"][-1]),
    }
    # Bob's own messages never count for him; alice's two left in r1 do.
    status, page = rest(api, "GET", "/api/rooms", bob)
    assert {r["room"]: r["unread"] for r in page["rooms"]} == {"r1": 2, "r2": 0, "r3": 0}


@on_single_and_cluster
async def test_a_listing_says_up_to_which_message_it_counted_so_nothing_counts_twice(cfg, api):
    """Before the drain has stored anything, the count is already exact, and
    the listing names the id it counts up to, read at the same instant: of
    what a client then receives, exactly the messages after that id are the
    ones not yet counted."""
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    status, dm = rest(api, "POST", "/api/dms", alice, {"username": "bob"})
    assert status == 200, dm
    room = dm["room"]["room"]
    async with replica(cfg) as (url, _):
        a = await client(url, alice, room)
        counted = await send(a, room, 3)
        status, page = rest(api, "GET", "/api/rooms", bob)
        assert status == 200, page
        (listed,) = page["rooms"]
        assert (listed["unread"], listed["counted_to"], listed["last_id"]) == (3, counted[-1], None)
        later = await send(a, room, 2)
        b = await client(url, bob)
        await b.join(room, since="0-0")
        await b.read_until(later[-1])
        received = [f["id"] for f in b.live.frames if f.get("type") == "message"]
        assert received == counted + later
        counted_to = receipts.parse_id(listed["counted_to"])
        after = [i for i in received if receipts.parse_id(i) > counted_to]
        assert after == later
        for who in (a, b):
            await who.ws.close()
    # Her own messages never count for her, up to the same newest id.
    status, page = rest(api, "GET", "/api/rooms", alice)
    assert [(r["unread"], r["counted_to"]) for r in page["rooms"]] == [(0, later[-1])]


async def test_only_readers_move_cursors_and_read_frames_are_never_refused_or_limited(cfg, api):
    owner, outsider = person(cfg, "owner"), person(cfg, "outsider")
    assert rest(api, "POST", "/api/rooms", owner, {"room": "p", "visibility": "private"})[0] == 201
    async with replica(dataclasses.replace(cfg, rate_limit_changes=1)) as (url, _):
        o = await client(url, owner, "p")
        ids = await send(o, "p", 30)
        x = await client(url, outsider)
        # Never answered, and nothing moves: the next answer is the ping's.
        for frame in (
            f'{{"type": "read", "room": "p", "id": "{ids[0]}"}}',
            '{"type": "read", "room": "p", "id": "1-1"}',
            '{"type": "ping"}',
        ):
            await x.ws.send(frame)
        assert (await receive_json(x.ws))["type"] == "pong"
        assert rest(api, "GET", "/api/rooms/p/receipts", owner)[1]["receipts"] == []
        # Thirty reads at once, each one forward: each one moves the cursor.
        for message_id in ids:
            await o.ws.send(f'{{"type": "read", "room": "p", "id": "{message_id}"}}')
        frames = [await receipt(o, owner.user_id) for _ in ids]
        assert [f["read"] for f in frames] == ids
        for who in (o, x):
            await who.ws.close()
    status, body = rest(api, "POST", "/api/rooms/p/read", outsider, {"id": ids[0]})
    assert (status, body["code"]) == (403, "forbidden")
    assert rest(api, "GET", "/api/rooms/p/receipts", outsider)[0] == 403
    assert rest(api, "POST", "/api/rooms/p/read", owner, {"id": "1-1"})[1]["code"] == "not_found"
