"""Rooms people own, on real Redis, SecantusDB, moto's S3 and two fan-out
replicas: who may read a private room is decided by one rule on every path
(REST history, search, details, listing, attachment links; WebSocket join,
resume, message, typing), and a membership change reaches open connections
on every replica within half a second."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from aurora import attachments, blocks, membership
from aurora.backends import database, redis_client
from aurora.keyspace import blocks_key, room_members_key
from aurora.settings import Settings
from local.runtime import LocalFunction
from tests.conftest import on_single_and_cluster
from tests.support.events import template_function
from tests.support.fanout import receive_json, replica, send_json
from tests.support.rooms import Person, answer, client, drain, link, person, rest

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24
ROOM = "board"
SURFACES = ("history", "search", "presence", "details", "listing", "attachment_link",
            "ws_join", "join_since", "message", "typing")  # fmt: skip
# The authorization matrices, as data: may this role use this surface?
# A private room: its members read and write (blocking is about direct rooms
# only: a member the owner blocked is still a member); operators moderate
# public rooms only, so here they are nobody.
ROLES = ("owner", "admin", "member", "non_member", "banned", "blocked",
         "removed_while_connected", "operator")  # fmt: skip
READERS = {"owner", "admin", "member", "blocked"}
MATRIX = {role: dict.fromkeys(SURFACES, role in READERS) for role in ROLES}
# A direct room: the two of them; the one the other blocked still reads it,
# never writes (nor types) in it.
DM_ROLES = ("peer", "blocked_peer", "non_member", "operator")
DM_MATRIX = {
    "peer": dict.fromkeys(SURFACES, True),
    "blocked_peer": {surface: surface not in ("message", "typing") for surface in SURFACES},
    "non_member": dict.fromkeys(SURFACES, False),
    "operator": dict.fromkeys(SURFACES, False),
}


@pytest.fixture
def cfg(app_env: Settings, s3, s3_endpoint: str, monkeypatch) -> Iterator[Settings]:
    from aurora.settings import get_settings

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    get_settings.cache_clear()
    yield dataclasses.replace(app_env, s3_endpoint_url=s3_endpoint, membership_check_seconds=2.0)
    get_settings.cache_clear()


@pytest.fixture
def api(cfg: Settings) -> Iterator[LocalFunction]:
    fn = template_function("MessagesFunction", concurrency=2)
    yield fn
    fn.close()


@pytest.fixture
def files(cfg: Settings) -> Iterator[LocalFunction]:
    fn = template_function("AttachmentsFunction", concurrency=1)
    yield fn
    fn.close()


def make_operator(who: Person, monkeypatch) -> None:
    from aurora.settings import get_settings

    monkeypatch.setenv("AURORA_OPERATORS", who.user_id)
    get_settings.cache_clear()


async def ws_cells(url: str, who: Person, room: str, since: str) -> dict[str, bool]:
    """join+since, join, message and typing in the room, over one connection."""
    got = {}
    ws = await client(url, who)
    try:
        await send_json(ws, {"type": "join", "room": room, "since": since})
        first = await answer(ws, who)
        got["join_since"] = first["type"] == "joined"
        if got["join_since"]:
            await send_json(ws, {"type": "leave", "room": room})
            assert (await answer(ws, who))["type"] == "left"
        else:
            assert first["code"] == "forbidden"
        await send_json(ws, {"type": "join", "room": room})
        joined = await receive_json(ws, presence=True)
        got["ws_join"] = joined["type"] == "joined"
        if got["ws_join"]:
            # Who is online follows (after the replay).
            while (snapshot := await receive_json(ws, presence=True))["type"] != "presence":
                pass
            assert snapshot["room"] == room and len(snapshot["online"]) <= snapshot["count"]
        else:
            # Nothing of the room, its presence included: the refusal was the next frame.
            assert joined["type"] == "error" and joined["code"] == "forbidden", joined
        await send_json(ws, {"type": "message", "room": room, "text": "hi", "client_id": "m1"})
        sent = await answer(ws, who)
        got["message"] = sent["type"] == "ack"
        assert got["message"] or sent["code"] == "forbidden", sent
        await send_json(ws, {"type": "typing", "room": room, "typing": True})
        typed = await answer(ws, who)
        got["typing"] = typed["type"] == "typing"
        assert got["typing"] or typed["code"] == "forbidden", typed
    finally:
        await ws.close()
    return got


def rest_cells(api: LocalFunction, files: LocalFunction, who: Person, room: str, file_url: str,
               members: set[str]) -> dict[str, bool]:  # fmt: skip
    got = {}
    for surface, path, query in (
        ("history", f"/api/rooms/{room}/messages", {}),
        ("search", "/api/search", {"room": room, "q": "hi"}),
        ("presence", f"/api/rooms/{room}/presence", {}),
    ):
        status, body = rest(api, "GET", path, who, **query)
        assert status in (200, 403), body
        assert status == 200 or body == {"error": body["error"], "code": "forbidden"}
        got[surface] = status == 200
    status, body = rest(api, "GET", f"/api/rooms/{room}", who)
    assert status in (200, 403)
    got["details"] = status == 200
    if status == 200:
        assert {m["user"] for m in body["room"]["members"]} >= members
    status, body = rest(api, "GET", "/api/rooms", who)
    assert status == 200
    got["listing"] = room in [r["room"] for r in body["rooms"]]
    status = link(files, who, file_url)
    assert status in (200, 403)
    got["attachment_link"] = status == 200
    return got


def upload(cfg: Settings, s3, owner: Person) -> dict:
    """A file `owner` uploaded: only they, and the readers of a room it is
    posted in, may fetch it."""
    request = attachments.UploadRequest(filename="cat.png", content_type="image/png", size=len(PNG))
    grant = attachments.create_upload(request, owner.user_id, cfg, s3)
    posted = httpx.post(grant["upload"]["url"], data=grant["upload"]["fields"],
                        files={"file": ("f", PNG)})  # fmt: skip
    assert posted.status_code in (200, 204)
    return grant["attachment"]


async def post_file(url: str, owner: Person, room: str, attachment: dict) -> str:
    """`owner` posts the file in the room; the message's id."""
    ws = await client(url, owner)
    await send_json(ws, {"type": "join", "room": room})
    assert (await answer(ws, owner))["type"] == "joined"
    await send_json(ws, {"type": "message", "room": room, "text": "hi there", "client_id": "f",
                         "attachments": [attachment]})  # fmt: skip
    sent = await answer(ws, owner)
    await ws.close()
    return sent["id"]


def misses(seen: dict, matrix: dict) -> list[tuple[str, str, bool]]:
    return [(role, surface, seen[role][surface]) for role in matrix for surface in SURFACES
            if seen[role][surface] != matrix[role][surface]]  # fmt: skip


async def test_the_authorization_matrix_of_a_private_room_on_two_replicas(
    cfg, api, files, s3, monkeypatch
):
    people = {role: person(cfg, role.replace("_", "-")) for role in ROLES}
    owner = people["owner"]
    make_operator(people["operator"], monkeypatch)
    assert rest(api, "POST", "/api/rooms", owner, {"room": ROOM, "visibility": "private",
                                                    "title": "The board"})[0] == 201  # fmt: skip
    for role, who in people.items():
        if role in ("admin", "member", "banned", "blocked", "removed_while_connected"):
            wanted = {"role": "admin"} if role == "admin" else None
            status, body = rest(api, "PUT", f"/api/rooms/{ROOM}/members/{who.name}", owner, wanted)
            assert status == 200, body
    assert rest(api, "PUT", f"/api/rooms/{ROOM}/bans/{people['banned'].name}", owner)[0] == 200
    assert rest(api, "PUT", f"/api/blocks/{people['blocked'].name}", owner)[0] == 200
    attachment = upload(cfg, s3, owner)

    async with replica(cfg) as (url_a, _), replica(cfg) as (url_b, _):
        since = await post_file(url_a, owner, ROOM, attachment)
        drain(cfg)

        # Removed while connected, on the other replica: told within 0.5 s.
        removed = people["removed_while_connected"]
        held = await client(url_b, removed)
        await send_json(held, {"type": "join", "room": ROOM})
        assert (await answer(held, removed))["type"] == "joined"
        await asyncio.sleep(0.1)
        status, _ = rest(api, "DELETE", f"/api/rooms/{ROOM}/members/{removed.name}", owner)
        assert status == 200
        left = await answer(held, removed, timeout=0.5)
        assert left == {"type": "left", "room": ROOM, "reason": "removed"}
        await send_json(held, {"type": "message", "room": ROOM, "text": "still?"})
        assert (await answer(held, removed))["code"] == "forbidden"
        await held.close()

        seen = {}
        for i, (role, who) in enumerate(people.items()):
            url = url_a if i % 2 else url_b
            cells = rest_cells(api, files, who, ROOM, attachment["url"], {"owner", "admin"})
            seen[role] = cells | await ws_cells(url, who, ROOM, since)
    assert misses(seen, MATRIX) == []
    assert sum(seen[role][s] for role in ROLES for s in SURFACES) == len(READERS) * len(SURFACES)


async def test_the_authorization_matrix_of_a_direct_room_with_a_block_on_two_replicas(
    cfg, api, files, s3, monkeypatch
):
    names = {"peer": "alice", "blocked_peer": "bob", "non_member": "eve", "operator": "oper"}
    people = {role: person(cfg, name) for role, name in names.items()}
    peer, blocked = people["peer"], people["blocked_peer"]
    make_operator(people["operator"], monkeypatch)
    dm = rest(api, "POST", "/api/dms", peer, {"username": blocked.name})[1]["room"]["room"]
    attachment = upload(cfg, s3, peer)
    async with replica(cfg) as (url_a, _), replica(cfg) as (url_b, _):
        since = await post_file(url_a, peer, dm, attachment)
        drain(cfg)
        assert rest(api, "PUT", f"/api/blocks/{blocked.name}", peer)[0] == 200
        seen = {}
        for i, (role, who) in enumerate(people.items()):
            url = url_a if i % 2 else url_b
            cells = rest_cells(api, files, who, dm, attachment["url"], {"alice", "bob"})
            seen[role] = cells | await ws_cells(url, who, dm, since)
    assert misses(seen, DM_MATRIX) == []


@on_single_and_cluster
async def test_ban_delete_and_going_private_take_connections_out_on_every_replica(
    cfg, api, redis_layout
):
    owner, bob, carol = person(cfg, "owner"), person(cfg, "bob"), person(cfg, "carol")
    assert rest(api, "POST", "/api/rooms", owner, {"room": "club"})[0] == 201
    async with replica(cfg) as (url_a, _), replica(cfg) as (url_b, _):
        conns = {}
        for who, url in ((owner, url_a), (bob, url_b), (carol, url_a)):
            conns[who.name] = await client(url, who)
            await send_json(conns[who.name], {"type": "join", "room": "club"})
            assert (await answer(conns[who.name], who))["type"] == "joined"
        await asyncio.sleep(0.1)
        assert rest(api, "PUT", "/api/rooms/club/bans/bob", owner)[0] == 200
        assert await answer(conns["bob"], bob, 0.5) == {"type": "left", "room": "club",
                                                         "reason": "banned"}  # fmt: skip
        # Public, but carol joined it: a member, so going private keeps her in.
        assert rest(api, "PATCH", "/api/rooms/club", owner, {"visibility": "private"})[0] == 200
        await send_json(conns["carol"], {"type": "ping"})
        assert (await answer(conns["carol"], carol))["type"] == "pong"
        assert rest(api, "DELETE", "/api/rooms/club", owner)[0] == 200
        for who in (owner, carol):
            assert await answer(conns[who.name], who, 0.5) == {
                "type": "left", "room": "club", "reason": "deleted"}  # fmt: skip
        for ws in conns.values():
            await ws.close()
    cache = redis_client(cfg.redis_url)
    assert not cache.exists(redis_layout.window_key("club"), room_members_key("club"))
    assert rest(api, "GET", "/api/rooms/club/messages", owner)[0] == 403
    assert rest(api, "POST", "/api/rooms", owner, {"room": "club"})[1]["code"] == "room_exists"


async def test_a_change_whose_notice_was_lost_is_enforced_by_the_sweep(cfg, api):
    owner, bob = person(cfg, "owner"), person(cfg, "bob")
    assert (
        rest(api, "POST", "/api/rooms", owner, {"room": "vault", "visibility": "private"})[0] == 201
    )
    assert rest(api, "PUT", "/api/rooms/vault/members/bob", owner)[0] == 200
    async with replica(cfg) as (url, _):
        ws = await client(url, bob)
        await send_json(ws, {"type": "join", "room": "vault"})
        assert (await answer(ws, bob))["type"] == "joined"
        redis_client(cfg.redis_url).hdel(room_members_key("vault"), bob.user_id)  # no notice
        # MEMBERSHIP_CHECK_SECONDS is 2 here.
        assert await answer(ws, bob, 3.0) == {"type": "left", "room": "vault", "reason": "removed"}
        await ws.close()


async def test_joining_a_public_room_makes_a_member_until_they_leave_over_rest(cfg, api):
    alice = person(cfg, "alice")
    async with replica(cfg) as (url, _):
        ws = await client(url, alice)
        await send_json(ws, {"type": "join", "room": "lobby"})
        assert (await answer(ws, alice))["type"] == "joined"
        await send_json(ws, {"type": "leave", "room": "lobby"})  # this connection only
        assert (await answer(ws, alice)) == {"type": "left", "room": "lobby"}
        await ws.close()
    drain(cfg)
    rooms = rest(api, "GET", "/api/rooms", alice)[1]["rooms"]
    assert [(r["room"], r["role"], r["visibility"], r["last_id"]) for r in rooms] == [
        ("lobby", "member", "public", None)]  # fmt: skip
    assert rest(api, "DELETE", "/api/rooms/lobby/members/alice", alice)[0] == 200
    assert rest(api, "GET", "/api/rooms", alice)[1]["rooms"] == []
    # A room people joined is taken: nobody can make it theirs.
    assert rest(api, "POST", "/api/rooms", alice, {"room": "lobby"})[1]["code"] == "room_exists"


def test_two_users_creating_one_id_at_once_get_one_201_and_one_409(cfg, api):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    with ThreadPoolExecutor(2) as pool:
        for i in range(5):
            body = {"room": f"race-{i}", "visibility": "private"}
            got = pool.map(lambda who, b=body: rest(api, "POST", "/api/rooms", who, b)[0],
                           [alice, bob])  # fmt: skip
            assert sorted(got) == [201, 409]


@on_single_and_cluster
def test_taken_ids_reserved_ids_and_roles_are_enforced(cfg, api, redis_layout):
    owner, admin, bob = person(cfg, "owner"), person(cfg, "admin"), person(cfg, "bob")
    # A room that had a message is taken.
    redis_client(cfg.redis_url).xadd(redis_layout.window_key("chatty"), {"f": "{}"})
    assert rest(api, "POST", "/api/rooms", owner, {"room": "chatty"})[1]["code"] == "room_exists"
    assert rest(api, "POST", "/api/rooms", owner, {"room": "dm:x"})[1]["code"] == "reserved_room"
    assert rest(api, "POST", "/api/rooms", owner, {"room": "general"})[1]["code"] == "room_exists"
    assert rest(api, "POST", "/api/rooms", owner, {"room": "r", "visibility": "private"})[0] == 201
    assert rest(api, "PUT", "/api/rooms/r/members/admin", owner, {"role": "admin"})[0] == 200
    assert rest(api, "PUT", "/api/rooms/r/members/bob", admin)[0] == 200
    # Only the owner makes admins; nobody removes the owner; the owner can't just leave.
    assert rest(api, "PUT", "/api/rooms/r/members/bob", admin, {"role": "admin"})[0] == 403
    assert rest(api, "DELETE", "/api/rooms/r/members/owner", admin)[0] == 403
    assert rest(api, "PATCH", "/api/rooms/r", bob, {"title": "mine"})[0] == 403
    assert rest(api, "DELETE", "/api/rooms/r", admin)[0] == 403
    left = rest(api, "DELETE", "/api/rooms/r/members/owner", owner)
    assert left[1]["code"] == "owner_must_hand_over"
    # Handing over: bob owns it, the old owner is an admin and may now leave.
    assert rest(api, "PUT", "/api/rooms/r/members/bob", owner, {"role": "owner"})[0] == 200
    details = rest(api, "GET", "/api/rooms/r", bob)[1]["room"]
    assert details["owner"] == bob.user_id
    assert {m["user"]: m["role"] for m in details["members"]} == {
        "owner": "admin", "admin": "admin", "bob": "owner"}  # fmt: skip
    assert rest(api, "DELETE", "/api/rooms/r/members/owner", owner)[0] == 200
    assert rest(api, "PATCH", "/api/rooms/r", bob, {"title": "x" * 101})[0] == 400


def test_room_listings_page_by_cursor_and_browse_only_public_rooms(cfg, api):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    for i in range(5):
        assert rest(api, "POST", "/api/rooms", alice, {"room": f"pub-{i}"})[0] == 201
    assert (
        rest(api, "POST", "/api/rooms", bob, {"room": "hidden", "visibility": "private"})[0] == 201
    )
    seen, cursor = [], None
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        status, page = rest(api, "GET", "/api/rooms", alice, **query)
        assert status == 200
        seen += [r["room"] for r in page["rooms"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"pub-{i}" for i in range(5)] and len(seen) == 5
    public = rest(api, "GET", "/api/rooms", bob, scope="public", limit="100")[1]["rooms"]
    assert sorted(r["room"] for r in public) == [f"pub-{i}" for i in range(5)]
    assert all(r["role"] is None for r in public)


@on_single_and_cluster
def test_the_mirror_is_rebuilt_from_mongodb(cfg, api):
    owner, bob, eve = person(cfg, "owner"), person(cfg, "bob"), person(cfg, "eve")
    assert (
        rest(api, "POST", "/api/rooms", owner, {"room": "vault", "visibility": "private"})[0] == 201
    )
    assert rest(api, "PUT", "/api/rooms/vault/members/bob", owner)[0] == 200
    assert rest(api, "PUT", "/api/rooms/vault/bans/eve", owner)[0] == 200
    assert rest(api, "PUT", "/api/blocks/eve", bob)[0] == 200
    cache = redis_client(cfg.redis_url)

    def standings() -> list[membership.Standing]:
        return [membership.standing(cache, "vault", p.user_id) for p in (owner, bob, eve)]

    before = standings()
    cache.flushdb()
    assert [s.may_read for s in standings()] == [True, True, True]  # lost: open to all
    assert membership.rebuild_mirror(database(cfg), cache) >= 1
    assert blocks.rebuild_mirror(database(cfg), cache) == 1
    assert standings() == before
    assert cache.smembers(blocks_key(bob.user_id)) == {eve.user_id}
    assert [s.may_read for s in before] == [True, True, False]


# -- direct rooms ---------------------------------------------------------------------


@on_single_and_cluster
async def test_a_direct_room_is_one_per_pair_whoever_asks_and_nobody_else_gets_in(cfg, api):
    alice, bob, eve = person(cfg, "alice"), person(cfg, "bob"), person(cfg, "eve")
    status, first = rest(api, "POST", "/api/dms", alice, {"username": "bob"})
    assert status == 200, first
    dm = first["room"]["room"]
    assert dm.startswith("dm:") and first["room"]["visibility"] == "direct"
    assert rest(api, "POST", "/api/dms", bob, {"username": "ALICE"})[1]["room"]["room"] == dm
    assert rest(api, "POST", "/api/dms", alice, {"username": "bob"})[1]["room"]["room"] == dm
    assert rest(api, "POST", "/api/dms", alice, {"username": "alice"})[1]["code"] == "self_direct"
    assert rest(api, "POST", "/api/dms", alice, {"username": "nobody"})[0] == 404
    details = rest(api, "GET", f"/api/rooms/{dm}", bob)[1]["room"]
    assert {m["user"] for m in details["members"]} == {"alice", "bob"}
    for who, other in ((alice, bob), (bob, alice)):
        listed = rest(api, "GET", "/api/rooms", who)[1]["rooms"]
        assert [(r["room"], r["visibility"]) for r in listed] == [(dm, "direct")]
        # Named after the other person, in the listing and the details.
        peer = {"user": other.name, "user_id": other.user_id}
        assert listed[0]["with"] == peer
        assert rest(api, "GET", f"/api/rooms/{dm}", who)[1]["room"]["with"] == peer
    # A third user: refused on every REST path, and can't be let in.
    assert rest(api, "GET", f"/api/rooms/{dm}/messages", eve)[0] == 403
    assert rest(api, "GET", "/api/search", eve, room=dm, q="x")[0] == 403
    assert rest(api, "GET", f"/api/rooms/{dm}", eve)[0] == 403
    assert dm not in str(rest(api, "GET", "/api/rooms", eve, scope="public")[1])
    assert rest(api, "PUT", f"/api/rooms/{dm}/members/eve", alice)[0] == 403
    assert rest(api, "PATCH", f"/api/rooms/{dm}", alice, {"visibility": "public"})[0] == 403
    assert rest(api, "POST", "/api/rooms", eve, {"room": dm})[1]["code"] == "reserved_room"
    async with replica(cfg) as (url_a, _), replica(cfg) as (url_b, _):
        ws_alice, ws_bob, ws_eve = await client(url_a, alice), await client(url_b, bob), \
            await client(url_b, eve)  # fmt: skip
        for ws, who in ((ws_alice, alice), (ws_bob, bob)):
            await send_json(ws, {"type": "join", "room": dm})
            assert (await answer(ws, who))["type"] == "joined"
        await asyncio.sleep(0.1)
        await send_json(ws_alice, {"type": "message", "room": dm, "text": "psst"})
        assert (await receive_json(ws_bob))["text"] == "psst"
        for frame in ({"type": "join", "room": dm}, {"type": "join", "room": dm, "since": "1-0"},
                      {"type": "message", "room": dm, "text": "me too"},
                      {"type": "typing", "room": dm, "typing": True},
                      {"type": "join", "room": "dm:" + "0" * 40}):  # fmt: skip
            await send_json(ws_eve, frame)
            assert (await answer(ws_eve, eve))["code"] == "forbidden", frame
        for ws in (ws_alice, ws_bob, ws_eve):
            await ws.close()


# -- bad input: never a 5xx, every 4xx is {error, code} ---------------------------------

_names = st.sampled_from(["bob", "owner", "nobody", "", "a" * 40, "../x", "ü", "dm:x"])
_rooms = st.sampled_from(["r", "dm:x", "a" * 65, "..", "%2F", "ok.room", "x y"])
_bodies = st.one_of(
    st.none(),
    st.sampled_from(["{not json", "[]", "null", '"x"', "1e999"]),
    st.fixed_dictionaries(
        {},
        optional={
            "room": st.one_of(_rooms, st.integers(), st.none()),
            "visibility": st.sampled_from(["public", "private", "direct", "", 1]),
            "title": st.one_of(st.text(max_size=120), st.integers()),
            "role": st.sampled_from(["member", "admin", "owner", "god", None, 3]),
            "extra": st.text(max_size=5),
            "username": st.one_of(_names, st.integers(), st.text(max_size=80)),
        },
    ),
)
_calls = st.sampled_from([
    ("POST", "/api/rooms"), ("GET", "/api/rooms"), ("GET", "/api/rooms/{room}"),
    ("PATCH", "/api/rooms/{room}"), ("DELETE", "/api/rooms/{room}"),
    ("PUT", "/api/rooms/{room}/members/{name}"), ("DELETE", "/api/rooms/{room}/members/{name}"),
    ("PUT", "/api/rooms/{room}/bans/{name}"), ("DELETE", "/api/rooms/{room}/bans/{name}"),
    ("POST", "/api/dms"), ("GET", "/api/rooms/{room}/presence"), ("GET", "/api/blocks"),
    ("PUT", "/api/blocks/{name}"), ("DELETE", "/api/blocks/{name}"), ("GET", "/api/audit"),
])  # fmt: skip
_queries = st.fixed_dictionaries({}, optional={
    "scope": st.sampled_from(["public", "all", ""]), "limit": st.sampled_from(["0", "5", "x"]),
    "cursor": st.text(max_size=60) | st.just("0" * 20 + "-" + "0" * 20 + "~r")
              | st.sampled_from(["0", "1" * 21, "f" * 24, "-1", "18446744073709551616"]),
    "room": _rooms,
})  # fmt: skip


def test_no_input_makes_a_rooms_route_answer_5xx(cfg, api, monkeypatch):
    owner = person(cfg, "owner")
    person(cfg, "bob")
    make_operator(owner, monkeypatch)  # the audit log answers, not only 403
    assert rest(api, "POST", "/api/rooms", owner, {"room": "r", "visibility": "private"})[0] == 201

    @hypothesis_settings(max_examples=160, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(_calls, _rooms, _names, _bodies, _queries)
    def check(route, room, name, body, query):
        method, path = route
        path = path.format(room=room, name=name)
        status, answer = rest(api, method, path, owner, body, **query)
        assert status < 500, (method, path, body, answer)
        if status >= 400:
            assert set(answer) == {"error", "code"}, answer

    check()
