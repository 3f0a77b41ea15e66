"""Operators, the audit log and blocking, on real Redis, SecantusDB and two
fan-out replicas: operators moderate every public room and only those, every
moderation and room-administration action is in the audit log only operators
read, and someone you blocked can't reach you in a direct room."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from aurora import membership, rooms
from aurora.backends import database, redis_client
from aurora.settings import Settings, get_settings
from local.runtime import LocalFunction
from tests.conftest import on_single_and_cluster
from tests.support.events import template_function
from tests.support.fanout import receive_json, replica, send_json
from tests.support.rooms import Person, answer, client, person, rest


@pytest.fixture
def cfg(app_env: Settings) -> Iterator[Settings]:
    yield dataclasses.replace(app_env, membership_check_seconds=2.0)


@pytest.fixture
def api(cfg: Settings) -> Iterator[LocalFunction]:
    fn = template_function("MessagesFunction", concurrency=2)
    yield fn
    fn.close()


@pytest.fixture
def operator(cfg: Settings, monkeypatch) -> Iterator[Person]:
    """A user named in AURORA_OPERATORS (settings are read again with it)."""
    who = person(cfg, "oper")
    monkeypatch.setenv("AURORA_OPERATORS", f"someone-else,{who.user_id}")
    get_settings.cache_clear()
    yield who
    get_settings.cache_clear()


def walk_audit(api: LocalFunction, who: Person, **query: str) -> list[dict]:
    entries, cursor = [], None
    while True:
        page = query | ({"cursor": cursor} if cursor else {})
        status, body = rest(api, "GET", "/api/audit", who, **page)
        assert status == 200, body
        entries += body["entries"]
        cursor = body["next_cursor"]
        if cursor is None:
            return entries


async def test_operators_moderate_every_public_room_general_included_never_a_private_one(
    cfg, api, operator
):
    alice, bob, carol = person(cfg, "alice"), person(cfg, "bob"), person(cfg, "carol")
    assert rest(api, "POST", "/api/rooms", carol, {"room": "plaza"})[0] == 201
    status, _ = rest(api, "POST", "/api/rooms", carol, {"room": "den", "visibility": "private"})
    assert status == 201
    for room in ("plaza", "den"):
        assert rest(api, "PUT", f"/api/rooms/{room}/members/alice", carol)[0] == 200

    async with replica(cfg) as (url, _):
        ws = await client(url, alice)
        await send_json(ws, {"type": "join", "room": "general"})
        assert (await answer(ws, alice))["type"] == "joined"
        await asyncio.sleep(0.1)
        # Who may not: a plain user, in general or someone else's room.
        for path in ("/api/rooms/general/bans/alice", "/api/rooms/plaza/bans/alice"):
            assert rest(api, "PUT", path, bob)[1]["code"] == "forbidden"
        # An operator in general: the connection is taken out at once.
        assert rest(api, "PUT", "/api/rooms/general/bans/alice", operator)[0] == 200
        assert await answer(ws, alice, 0.5) == {"type": "left", "room": "general",
                                                "reason": "banned"}  # fmt: skip
        await send_json(ws, {"type": "join", "room": "general"})
        assert (await answer(ws, alice))["code"] == "forbidden"
        await ws.close()
    assert rest(api, "DELETE", "/api/rooms/general/bans/alice", operator)[0] == 200

    # In a public room someone owns: remove and ban members, never the owner.
    assert rest(api, "DELETE", "/api/rooms/plaza/members/alice", operator)[0] == 200
    assert rest(api, "PUT", "/api/rooms/plaza/bans/bob", operator)[0] == 200
    assert rest(api, "PUT", "/api/rooms/plaza/bans/carol", operator)[0] == 403
    assert rest(api, "DELETE", "/api/rooms/plaza/members/carol", operator)[0] == 403
    # Nobody moderates an operator but the room's owner... who can't either.
    assert rest(api, "PUT", "/api/rooms/plaza/bans/oper", carol)[0] == 403
    # A private room is its members' business.
    assert rest(api, "DELETE", "/api/rooms/den/members/alice", operator)[0] == 403
    assert rest(api, "PUT", "/api/rooms/den/bans/alice", operator)[0] == 403

    # The audit log: every action, newest first, for operators only.
    assert rest(api, "GET", "/api/audit", carol)[1]["code"] == "forbidden"
    entries = walk_audit(api, operator, limit="2")
    assert len({e["id"] for e in entries}) == len(entries)
    done = [(e["action"], e["room"], e["actor"]["user"], (e["target"] or {}).get("user"))
            for e in reversed(entries)]  # fmt: skip
    assert done == [
        ("room.create", "plaza", "carol", None),
        ("room.create", "den", "carol", None),
        ("member.put", "plaza", "carol", "alice"),
        ("member.put", "den", "carol", "alice"),
        ("ban.put", "general", "oper", "alice"),
        ("ban.delete", "general", "oper", "alice"),
        ("member.remove", "plaza", "oper", "alice"),
        ("ban.put", "plaza", "oper", "bob"),
    ]
    assert all(e["operator"] == (e["actor"]["user"] == "oper") for e in entries)
    assert entries[0]["at"].endswith("+00:00") and entries[0]["target"]["user_id"] == bob.user_id
    plaza = walk_audit(api, operator, room="plaza")
    assert [e["action"] for e in plaza] == ["ban.put", "member.remove", "member.put",
                                            "room.create"]  # fmt: skip
    assert rest(api, "GET", "/api/audit", operator, cursor="nope")[1]["code"] == "invalid_cursor"


@on_single_and_cluster
async def test_someone_you_blocked_cannot_open_post_or_type_in_your_direct_room(cfg, api):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    dm = rest(api, "POST", "/api/dms", alice, {"username": "bob"})[1]["room"]["room"]
    async with replica(cfg) as (url_a, _), replica(cfg) as (url_b, _):
        ws_alice, ws_bob = await client(url_a, alice), await client(url_b, bob)
        for ws, who in ((ws_alice, alice), (ws_bob, bob)):
            await send_json(ws, {"type": "join", "room": dm})
            assert (await answer(ws, who))["type"] == "joined"
        await asyncio.sleep(0.1)
        status, body = rest(api, "PUT", "/api/blocks/bob", alice)
        assert (status, body) == (200, {"blocked": {"user": "bob", "user_id": bob.user_id}})
        await asyncio.sleep(0.3)  # the notice reaches the other replica
        for frame in ({"type": "message", "room": dm, "text": "hey", "client_id": "b1"},
                      {"type": "typing", "room": dm, "typing": True}):  # fmt: skip
            await send_json(ws_bob, frame)
            assert (await answer(ws_bob, bob))["code"] == "forbidden", frame
        # The blocked user still reads; the blocker still writes.
        await send_json(ws_alice, {"type": "message", "room": dm, "text": "bye", "client_id": "a"})
        assert (await answer(ws_alice, alice))["type"] == "ack"
        assert (await receive_json(ws_bob))["text"] == "bye"
        assert rest(api, "POST", "/api/dms", bob, {"username": "alice"})[1]["code"] == "forbidden"
        assert rest(api, "GET", f"/api/rooms/{dm}/messages", bob)[0] == 200

        assert rest(api, "DELETE", "/api/blocks/bob", alice) == (200, {"ok": True})
        await asyncio.sleep(0.3)
        await send_json(ws_bob, {"type": "message", "room": dm, "text": "hi", "client_id": "b2"})
        assert (await answer(ws_bob, bob))["type"] == "ack"
        assert rest(api, "POST", "/api/dms", bob, {"username": "alice"})[0] == 200
        for ws in (ws_alice, ws_bob):
            await ws.close()


def test_blocks_are_listed_bounded_and_checked(cfg, api, monkeypatch):
    alice = person(cfg, "alice")
    for name in ("bob", "carol", "dave"):
        person(cfg, name)
    monkeypatch.setenv("MAX_BLOCKS_PER_USER", "2")
    get_settings.cache_clear()
    assert rest(api, "PUT", "/api/blocks/bob", alice)[0] == 200
    assert rest(api, "PUT", "/api/blocks/bob", alice)[0] == 200  # again: still one
    assert rest(api, "PUT", "/api/blocks/carol", alice)[0] == 200
    assert rest(api, "PUT", "/api/blocks/dave", alice)[1]["code"] == "too_many_blocks"
    assert [b["user"] for b in rest(api, "GET", "/api/blocks", alice)[1]["blocks"]] == [
        "carol", "bob"]  # fmt: skip
    assert rest(api, "PUT", "/api/blocks/alice", alice)[1]["code"] == "self_block"
    assert rest(api, "PUT", "/api/blocks/nobody", alice)[1]["code"] == "user_not_found"
    assert rest(api, "DELETE", "/api/blocks/bob", alice)[0] == 200
    assert rest(api, "PUT", "/api/blocks/dave", alice)[0] == 200
    assert rest(api, "GET", "/api/blocks", None)[0] == 401


def test_an_invite_and_a_removal_at_once_leave_mongodb_and_the_mirror_agreeing(
    cfg, api, monkeypatch
):
    owner, admin, bob = person(cfg, "owner"), person(cfg, "admin"), person(cfg, "bob")
    den = {"room": "den", "visibility": "private"}
    assert rest(api, "POST", "/api/rooms", owner, den)[0] == 201
    assert rest(api, "PUT", "/api/rooms/den/members/admin", owner, {"role": "admin"})[0] == 200
    # The invite dawdles between its MongoDB write and its mirror write: the
    # removal, sent meanwhile, must not slip in between.
    real = membership.Mirror.set_role

    def slow_set_role(self, user_id: str, role: str) -> None:
        time.sleep(0.4)
        real(self, user_id, role)

    monkeypatch.setattr(membership.Mirror, "set_role", slow_set_role)
    with ThreadPoolExecutor(2) as pool:
        invite = pool.submit(rest, api, "PUT", "/api/rooms/den/members/bob", owner)
        time.sleep(0.15)
        remove = pool.submit(rest, api, "DELETE", "/api/rooms/den/members/bob", admin)
        assert invite.result()[0] == 200 and remove.result()[0] == 200
    stored = database(cfg)[rooms.MEMBERSHIPS].find_one({"room": "den", "user_id": bob.user_id})
    mirrored = membership.standing(redis_client(cfg.redis_url), "den", bob.user_id).may_read
    assert (stored, mirrored) == (None, False)


@on_single_and_cluster
async def test_a_ban_while_messages_are_in_flight_stops_them_at_once(cfg, api, redis_layout):
    owner, bob = person(cfg, "owner"), person(cfg, "bob")
    assert rest(api, "POST", "/api/rooms", owner, {"room": "club"})[0] == 201
    # One sender floods: no send, budget or frame limit stops it before the ban.
    fast = dataclasses.replace(
        cfg, rate_limit_messages=100_000, user_message_burst=100_000,
        user_messages_per_second=100_000.0, inbound_frame_burst=100_000,
        inbound_frames_per_second=100_000.0, flood_frames_per_second=100_000,
    )  # fmt: skip
    async with replica(fast) as (url_a, _), replica(fast) as (url_b, _):
        watcher, ws = await client(url_a, owner), await client(url_b, bob)
        for conn, who in ((watcher, owner), (ws, bob)):
            await send_json(conn, {"type": "join", "room": "club"})
            assert (await answer(conn, who))["type"] == "joined"
        await asyncio.sleep(0.1)
        acked, refused, left = [], 0, None

        async def flood() -> None:
            nonlocal refused, left
            for i in itertools.count():  # until refused: the ban's request may be slow
                await send_json(ws, {"type": "message", "room": "club", "text": f"m{i}",
                                     "client_id": f"c{i}"})  # fmt: skip
                got = await answer(ws, bob)
                if got["type"] == "ack":
                    assert left is None, "accepted after the connection was taken out"
                    acked.append(got["id"])
                elif got["type"] == "left":
                    left = got
                    got = await answer(ws, bob)
                if got["type"] == "error":
                    assert got["code"] in ("forbidden", "not_joined"), got
                    refused += 1
                    # Refusals may come before the `left` that says why: keep on until both.
                    if refused >= 5 and left is not None:
                        return

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(0.2)
        banned = asyncio.get_running_loop().time()
        status = await asyncio.to_thread(
            lambda: rest(api, "PUT", "/api/rooms/club/bans/bob", owner)[0]
        )
        assert status == 200
        await asyncio.wait_for(flooding, 20)
        assert left == {"type": "left", "room": "club", "reason": "banned"}
        assert acked and asyncio.get_running_loop().time() - banned < 20
        # Nothing of bob's was taken after the last ack he got.
        window = redis_client(cfg.redis_url).xrange(redis_layout.window_key("club"))
        stored = [entry_id for entry_id, fields in window if bob.user_id in fields["f"]]
        assert stored[-1] == acked[-1]
        for conn in (watcher, ws):
            await conn.close()
