"""A Redis that lost its data gets its unread state back from MongoDB
(`scripts/rebuild_redis.py`): after traffic, a wipe and the rebuild, every
listing counts what it counted before, and every cursor is where it was."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
import redis

from aurora import messages, receipts, recount, rooms
from aurora.backends import database, is_cluster, layout, redis_client
from aurora.drain import partitions_of
from aurora.settings import Settings
from aurora.stream import StreamEntry, change_fields, parse_entry
from local.runtime import LocalFunction
from scripts import rebuild_redis
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


async def send(who: Client, room: str, n: int) -> list[str]:
    return [(await who.request({"type": "message", "room": room, "text": f"m{i}"}))["id"]
            for i in range(n)]  # fmt: skip


async def read(reader: Client, room: str, message_id: str, kind: str = "read") -> None:
    """Move the reader's cursor and wait until the room has seen it move."""
    await reader.ws.send(f'{{"type": "{kind}", "room": "{room}", "id": "{message_id}"}}')
    while (await receive_json(reader.ws))["type"] != "receipt":
        pass


def unread_state(api: LocalFunction, people, rooms: list[str]) -> dict:
    """What each person's listing says of each room, and every cursor."""
    state = {}
    for who in people:
        status, page = rest(api, "GET", "/api/rooms", who)
        assert status == 200, page
        state[who.name] = {r["room"]: (r["unread"], r["read"]) for r in page["rooms"]}
    for room in rooms:
        status, body = rest(api, "GET", f"/api/rooms/{room}/receipts", people[0])
        assert status == 200, body
        state[room] = body["receipts"]
    return state


def wipe(cfg: Settings) -> None:
    client = redis_client(cfg.redis_url)
    if is_cluster(client):
        client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    else:
        client.flushall()


@on_single_and_cluster
async def test_after_a_wipe_the_rebuild_gives_back_every_unread_count_and_cursor(cfg, api):
    alice, bob, carol = (person(cfg, name) for name in ("alice", "bob", "carol"))
    rooms = ["r1", "r2"]
    for room in rooms:
        assert (
            rest(api, "POST", "/api/rooms", bob, {"room": room, "visibility": "private"})[0] == 201
        )
        for member in ("alice", "carol"):
            assert rest(api, "PUT", f"/api/rooms/{room}/members/{member}", bob)[0] == 200
    async with replica(cfg) as (url, _):
        a, b, c = await client(url, alice), await client(url, bob), await client(url, carol)
        for room in rooms:
            for who in (a, b, c):
                assert (await who.join(room))["type"] == "joined"
        by_bob = {room: await send(b, room, 8) for room in rooms}
        by_alice = await send(a, "r1", 4)
        # Reads, receipts and deletes before and after the cursors; carol
        # never reads r1 and has only received part of it.
        await read(a, "r1", by_bob["r1"][3])
        await read(c, "r1", by_bob["r1"][5], "delivered")
        await read(b, "r1", by_alice[0])
        await read(c, "r2", by_bob["r2"][-1])
        for who, message in ((b, by_bob["r1"][1]), (b, by_bob["r1"][6]), (a, by_alice[2])):
            assert (await who.request({"type": "delete", "room": "r1", "id": message}))[
                "type"
            ] == "ack"
        for who in (a, b, c):
            await who.ws.close()
    drain(cfg, partitions=partitions_of(layout(cfg)))
    before = unread_state(api, [alice, bob, carol], rooms)
    assert before["alice"]["r1"] == (8 - 4 - 1, by_bob["r1"][3])  # one deleted after her cursor

    wipe(cfg)
    status, page = rest(api, "GET", "/api/rooms", alice)
    assert (status, [r["unread"] for r in page["rooms"]]) == (200, [0, 0])  # all forgotten
    assert rebuild_redis.main([], cfg) == 0
    assert unread_state(api, [alice, bob, carol], rooms) == before
    # Again, and the counts alone: nothing changes, nothing is added.
    again = recount.rebuild_counts(database(cfg), redis_client(cfg.redis_url), layout(cfg))
    assert (again.counters_raised, again.own) == (0, 0)
    assert unread_state(api, [alice, bob, carol], rooms) == before


def test_the_rebuild_neither_undoes_nor_double_counts_what_happens_meanwhile(settings):
    """MongoDB says alice read up to 2 and none of bob's 6 messages is
    deleted. Meanwhile, in Redis, alice read on to 4 and bob deleted 5: the
    rebuild leaves her cursor at 4, and 5 counts as deleted, not as bob's own."""
    db, client, where = database(settings), redis_client(settings.redis_url), layout(settings)
    room, ids = "r", [f"{1000 + i}-0" for i in range(7)]
    db[messages.COLLECTION].insert_many(
        [messages.document(StreamEntry(ids[n], room, "bob", "bob", "m", n=n)) for n in range(1, 7)]
    )
    rooms.record_activity(db, db[messages.COLLECTION].find())
    receipts.persist(db, [parse_entry("9000-0", change_fields("read", room, "alice", "a", ids[2])
                                      | {"n": "2"})])  # fmt: skip
    client.hset(where.cursors_key(room, "read"), "alice", f"4 {ids[4]}")
    client.zadd(where.deleted_numbers_key(room), {"5": 5})
    recount.rebuild_counts(db, client, where)
    assert receipts.unread(client, where, "alice", [room])[room]["read"] == ids[4]
    assert client.zrange(where.own_messages_key(room, "bob"), 0, -1) == ["1", "2", "3", "4", "6"]
    # 6 by bob, read to 4, 5 deleted: one unread.
    assert receipts.unread(client, where, "alice", [room])[room]["unread"] == 1
