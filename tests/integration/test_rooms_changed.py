"""`rooms_changed`: a change to someone's list of rooms (an invitation, a role, a
removal, a ban, a new direct room, the room's deletion) is pushed to that
user's v1 connections on every fan-out replica, and to nobody else: not the
actor (unless it is their list too), not the room's other members, not
strangers, not an original-protocol (v0) connection. The frame names no room."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect

from aurora import membership, rooms
from aurora.backends import database, redis_client
from aurora.keyspace import MEMBERSHIP_CHANNEL
from aurora.settings import Settings
from local.runtime import LocalFunction
from tests.conftest import on_single_and_cluster
from tests.support.events import template_function
from tests.support.fanout import replica, send_json
from tests.support.rooms import client, person, rest

FRAME = {"type": "rooms_changed"}

# Who causes what, and whose connections must be told, as data: (actor,
# method, path, body, the people told). "den" is a private room.
STEPS = [
    ("owner", "POST", "/api/rooms", {"room": "den", "visibility": "private"}, {"owner"}),
    ("owner", "PUT", "/api/rooms/den/members/target", None, {"target"}),
    ("owner", "PUT", "/api/rooms/den/members/member", None, {"member"}),
    ("owner", "PUT", "/api/rooms/den/members/target", {"role": "admin"}, {"target"}),
    ("owner", "DELETE", "/api/rooms/den/members/target", None, {"target"}),
    ("owner", "PUT", "/api/rooms/den/members/target", None, {"target"}),
    ("owner", "PUT", "/api/rooms/den/bans/target", None, {"target"}),
    ("owner", "DELETE", "/api/rooms/den/bans/target", None, set()),
    ("owner", "PATCH", "/api/rooms/den", {"title": "The den"}, set()),
    ("stranger", "POST", "/api/dms", {"username": "target"}, {"stranger", "target"}),
    # Asked again, by either: nothing new, nobody told (no way to make the
    # other's clients re-read their rooms at will).
    ("target", "POST", "/api/dms", {"username": "stranger"}, set()),
    ("stranger", "POST", "/api/dms", {"username": "target"}, set()),
    ("target", "PUT", "/api/blocks/stranger", None, set()),
    ("member", "DELETE", "/api/rooms/den/members/member", None, {"member"}),
    ("owner", "PUT", "/api/rooms/den/members/target", None, {"target"}),
    # Deleted: every member's list loses it (the banned and the departed had it no more).
    ("owner", "DELETE", "/api/rooms/den", None, {"owner", "target"}),
]
PEOPLE = ("owner", "target", "member", "stranger")
# Notices anyone with access to Redis could publish, naming the target in
# shapes no writer makes: each is ignored whole (a notice names at most
# MAX_RELIST users).
FORGED = [
    '{"room": "den", "relist": "id-target"}',
    '{"room": "den", "relist": {"id-target": 1}}',
    '{"room": "den", "relist": [["id-target"], 7, null]}',
    '{"room": "den", "relist": ["id-target"%s]}' % (', "id-x"' * membership.MAX_RELIST),
    '{"relist": ["id-target"]}',
    '{"room": "no room!", "relist": ["id-target"]}',
    "not json",
]


@pytest.fixture
def api(app_env: Settings) -> Iterator[LocalFunction]:
    fn = template_function("MessagesFunction", concurrency=1)
    yield fn
    fn.close()


async def next_rooms_changed(ws) -> None:
    async with asyncio.timeout(3):
        while json.loads(await ws.recv()) != FRAME:
            pass


async def told(ws) -> int:
    """How many `rooms_changed` frames reached `ws` before the answer to a
    ping (anything else is skipped; each one must be exactly FRAME)."""
    await send_json(ws, {"type": "ping"})
    count = 0
    async with asyncio.timeout(3):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "pong":
                return count
            if frame.get("type") == "rooms_changed":
                assert frame == FRAME  # it carries no room id, nothing at all
                count += 1


@on_single_and_cluster
async def test_rooms_changed_reaches_only_the_users_whose_rooms_changed_on_two_replicas(
    app_env, api
):
    people = {name: person(app_env, name) for name in (*PEOPLE, "sentinel")}
    cache = redis_client(app_env.redis_url)
    async with replica(app_env) as (url_a, _), replica(app_env) as (url_b, _):
        # Everyone on both replicas; the target also with the original protocol.
        conns = {(name, side): await client(url, people[name])
                 for name in (*PEOPLE, "sentinel")
                 for side, url in (("a", url_a), ("b", url_b))}  # fmt: skip
        v0 = await connect(f"{url_a}/?token={people['target'].token}")
        await asyncio.sleep(0.1)
        seen, wanted = [], []
        steps = [*STEPS, ("forged", None, None, None, set())]
        for step, (actor, method, path, body, expected) in enumerate(steps):
            if actor == "forged":
                target_id = people["target"].user_id
                for forged in FORGED:
                    cache.publish(MEMBERSHIP_CHANNEL, forged.replace("id-target", target_id))
            else:
                status, answer = rest(api, method, path, people[actor], body)
                assert status in (200, 201), (step, status, answer)
            # A barrier: a notice telling the sentinel, published after the
            # step's; once both replicas told the sentinel, they are past it.
            cache.publish(MEMBERSHIP_CHANNEL, membership.notice(
                "general", relist=(people["sentinel"].user_id,)))  # fmt: skip
            for side in ("a", "b"):
                await next_rooms_changed(conns[("sentinel", side)])
            for conn_key, ws in conns.items():
                if conn_key[0] == "sentinel":
                    continue
                count = await told(ws)
                seen.append((step, *conn_key, count))
                wanted.append((step, *conn_key, int(conn_key[0] in expected)))
            seen.append((step, "target", "v0", await told(v0)))
            wanted.append((step, "target", "v0", 0))
        assert [s for s, w in zip(seen, wanted, strict=True) if s != w] == []
        for ws in (*conns.values(), v0):
            await ws.close()


def test_a_deleted_rooms_members_are_all_named_in_bounded_notices(app_env, api):
    """A room of more members than one notice may name: its deletion names
    each of them once, in notices of at most MAX_RELIST users."""
    owner = person(app_env, "owner")
    cache = redis_client(app_env.redis_url)
    db = database(app_env)
    status, _ = rest(api, "POST", "/api/rooms", owner, {"room": "crowd"})
    assert status in (200, 201)
    others = [f"u{n:04d}" for n in range(membership.MAX_RELIST * 2 + 5)]
    db[rooms.MEMBERSHIPS].insert_many(
        {"room": "crowd", "user_id": user_id, "role": membership.MEMBER} for user_id in others
    )
    listener = cache.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(MEMBERSHIP_CHANNEL)
    assert rest(api, "DELETE", "/api/rooms/crowd", owner)[0] == 200
    named: list[str] = []
    wanted = sorted([*others, owner.user_id])
    for _ in range(50):  # a subscription's confirmation reads as None too
        if (message := listener.get_message(timeout=0.2)) is not None:
            relist = json.loads(message["data"])["relist"]
            assert 0 < len(relist) <= membership.MAX_RELIST
            named += relist
        if len(named) >= len(wanted):
            break
    listener.close()
    assert sorted(named) == wanted
