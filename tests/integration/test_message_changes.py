"""Edits and deletes, on real Redis, SecantusDB and fan-out replicas: live
clients, resume and history converge on one state, whatever the drain does;
only the author edits, only the author, the room's owner or an admin
deletes, on the WebSocket and over REST alike."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from aurora import attachments, audit, history, membership, message_state, messages, migrations
from aurora.backends import database, layout, redis_client
from aurora.drain import ensure_group
from aurora.errors import ForbiddenError
from aurora.settings import Settings
from aurora.stream import GROUP, StreamEntry, change_fields, parse_entry
from local.runtime import LocalFunction
from tests.support import ROOT
from tests.support.chat import Client, Person, client, drain, person, rest
from tests.support.draining import deployment_drain
from tests.support.events import template_function
from tests.support.fanout import replica

ROOM = "board"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 24


@pytest.fixture
def cfg(app_env: Settings, monkeypatch) -> Iterator[Settings]:
    """A window of 40 messages (so "older than the window" is quick to
    reach), the same for the fan-out and the REST function."""
    from aurora.settings import get_settings

    monkeypatch.setenv("RESUME_WINDOW", "40")
    get_settings.cache_clear()
    yield dataclasses.replace(
        app_env, resume_window=40, rate_limit_messages=1000, user_message_burst=10_000
    )
    get_settings.cache_clear()


@pytest.fixture
def api(cfg: Settings) -> Iterator[LocalFunction]:
    fn = template_function("MessagesFunction", concurrency=1)
    yield fn
    fn.close()


def stored_state(cfg: Settings) -> dict[str, dict]:
    page = history.page(database(cfg), ROOM, cfg, limit=100)["messages"]
    return {m["id"]: {"text": m["text"], "deleted": bool(m.get("deleted"))} for m in page}


def stored_reactions(cfg: Settings) -> dict[str, list[dict]]:
    page = history.page(database(cfg), ROOM, cfg, limit=100)["messages"]
    return {m["id"]: [{"emoji": r["emoji"], "count": r["count"]} for r in m["reactions"]]
            for m in page if m.get("reactions")}  # fmt: skip


# A drain in a process of its own, in batches of 5, that SIGKILLs itself the
# first time it writes changes to stored messages: a batch's messages
# inserted and its changes half done, nothing of it acknowledged.
KILLED_MID_BATCH = """
import os, signal, sys
import pymongo.collection
from aurora.backends import database, layout, redis_client
from aurora.drain import Drain, partitions_of
from aurora.settings import Settings

bulk_write = pymongo.collection.Collection.bulk_write
def dying(self, requests, *args, **kwargs):
    if self.name == "messages":
        bulk_write(self, requests[:1], *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return bulk_write(self, requests, *args, **kwargs)
pymongo.collection.Collection.bulk_write = dying
settings = Settings(env="local", redis_url=sys.argv[1], mongo_url=sys.argv[2], mongo_db=sys.argv[3])
Drain(redis_client(settings.redis_url), database(settings), consumer="killed", block_ms=10,
      batch_size=5, partitions=partitions_of(layout(settings))).run(lambda: True,
                                                                    exit_when_idle=True)
"""


async def test_live_clients_resume_and_history_converge_with_the_drain_killed_mid_batch(cfg):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    async with replica(cfg) as (url, _):
        a, b = await client(url, alice, ROOM), await client(url, bob, ROOM)
        ids = []
        for i in range(6):
            ids.append((await a.request({"type": "message", "room": ROOM, "text": f"m{i}"}))["id"])
        ids.append((await b.request({"type": "message", "room": ROOM, "text": "bob's"}))["id"])
        script = [
            (a, {"type": "edit", "id": ids[0], "text": "m0, edited"}),
            (a, {"type": "edit", "id": ids[0], "text": "m0, edited twice"}),
            (a, {"type": "delete", "id": ids[1]}),
            (a, {"type": "edit", "id": ids[2], "text": "m2, edited"}),
            (a, {"type": "delete", "id": ids[2]}),
            (b, {"type": "edit", "id": ids[6], "text": "bob's, edited"}),
            (a, {"type": "edit", "id": ids[3], "text": "m3, edited"}),
            (b, {"type": "delete", "id": ids[6]}),
            (b, {"type": "react", "id": ids[3], "emoji": "👍", "on": True}),
            (a, {"type": "react", "id": ids[3], "emoji": "👍", "on": True}),
            (a, {"type": "react", "id": ids[3], "emoji": "🎉", "on": True}),
            (b, {"type": "react", "id": ids[4], "emoji": "👀", "on": True}),
            (b, {"type": "react", "id": ids[3], "emoji": "👍", "on": False}),
            (a, {"type": "react", "id": ids[5], "emoji": "👍", "on": True}),
            (a, {"type": "delete", "id": ids[5]}),
        ]
        last = ""
        for who, frame in script:
            reply = await who.request(frame | {"room": ROOM})
            assert reply["type"] == "ack", reply
            last = reply["id"]
        await a.read_until(last)
        await b.read_until(last)

        # A client that was away since the first message resumes from it.
        c = await client(url, person(cfg, "carol"), ROOM, since=ids[0])
        c.live.messages[ids[0]] = {"text": "m0", "deleted": False}
        await c.read_until(last)
        for who in (a, b, c):
            await who.ws.close()

    done = subprocess.run(
        [sys.executable, "-c", KILLED_MID_BATCH, cfg.redis_url, cfg.mongo_url, cfg.mongo_db],
        cwd=ROOT, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    drain(cfg, claim_idle_ms=0)
    drain(cfg, claim_idle_ms=0)  # and once more: nothing changes

    stored = stored_state(cfg)
    assert a.live.messages == b.live.messages == c.live.messages == stored
    reactions = stored_reactions(cfg)
    assert a.live.reactions == b.live.reactions == c.live.reactions == reactions
    assert reactions == {
        ids[3]: [{"emoji": "🎉", "count": 1}, {"emoji": "👍", "count": 1}],
        ids[4]: [{"emoji": "👀", "count": 1}],
    }
    assert stored[ids[0]] == {"text": "m0, edited twice", "deleted": False}
    assert stored[ids[1]] == stored[ids[2]] == stored[ids[5]] == stored[ids[6]] == {
        "text": "", "deleted": True,
    }  # fmt: skip
    # Resume never replays a deleted message's text, nor its edits.
    replayed = json.dumps(c.live.frames)
    assert "m1" not in replayed and "m2" not in replayed and "bob's" not in replayed
    assert "m5" not in replayed
    assert database(cfg)[message_state.PARKED].count_documents({}) == 0


async def test_only_the_author_edits_and_the_author_owner_or_admin_deletes_on_both_paths(cfg, api):
    people = {role: person(cfg, role) for role in ("owner", "admin", "author", "member")}
    owner = people["owner"]
    status, _ = rest(api, "POST", "/api/rooms", owner, {"room": ROOM, "visibility": "private"})
    assert status == 201
    for role in ("admin", "author", "member"):
        body = {"role": "admin"} if role == "admin" else None
        path = f"/api/rooms/{ROOM}/members/{people[role].name}"
        assert rest(api, "PUT", path, owner, body)[0] == 200
    everyone = people | {"outsider": person(cfg, "outsider")}
    # The matrix, as data: may this role edit / delete the author's message?
    may_edit = {"owner": False, "admin": False, "author": True, "member": False,
                "outsider": False}  # fmt: skip
    may_delete = may_edit | {"owner": True, "admin": True}

    seen = {}
    async with replica(cfg) as (url, _):
        author = await client(url, people["author"], ROOM)
        sent = []
        for i in range(2 * len(everyone)):
            frame = {"type": "message", "room": ROOM, "text": f"t{i}"}
            sent.append((await author.request(frame))["id"])
        for i, (role, who) in enumerate(everyone.items()):
            other = await client(url, who, room=None)
            edit = await other.request({"type": "edit", "room": ROOM, "id": sent[2 * i],
                                        "text": "changed"})  # fmt: skip
            delete = await other.request({"type": "delete", "room": ROOM, "id": sent[2 * i + 1]})
            for name, reply in (("ws_edit", edit), ("ws_delete", delete)):
                assert reply["type"] == "ack" or reply["code"] == "forbidden", reply
                seen[(role, name)] = reply["type"] == "ack"
            await other.ws.close()
        await author.ws.close()
    drain(cfg)
    # REST, on messages only MongoDB has (the window is gone).
    redis_client(cfg.redis_url).delete(layout(cfg).window_key(ROOM))
    for i, (role, who) in enumerate(everyone.items()):
        path = f"/api/rooms/{ROOM}/messages/{sent[2 * i]}"
        edited = rest(api, "PATCH", path, who, {"text": "changed again"})
        deleted = rest(api, "DELETE", path, who)
        for name, (status, body) in (("rest_edit", edited), ("rest_delete", deleted)):
            assert status == 200 or (status, body["code"]) == (403, "forbidden"), body
            seen[(role, name)] = status == 200
    expected = {}
    for role in everyone:
        expected |= {(role, "ws_edit"): may_edit[role], (role, "rest_edit"): may_edit[role],
                     (role, "ws_delete"): may_delete[role],
                     (role, "rest_delete"): may_delete[role]}  # fmt: skip
    assert seen == expected
    # Deleting someone else's message is moderation: in the audit log, once
    # the drain has it, whichever path it took; the author's own is not.
    drain(cfg)
    logged = database(cfg)[audit.COLLECTION].find({"action": "message.delete"})
    assert sorted((e["actor"]["user"], e["target"]["user"], e["room"]) for e in logged) == sorted(
        [("owner", "author", ROOM)] * 2 + [("admin", "author", ROOM)] * 2
    )


async def test_an_operator_deletes_in_a_public_room_and_the_audit_log_says_so_once(
    cfg, monkeypatch
):
    from aurora.settings import get_settings

    author, oper, member = person(cfg, "author"), person(cfg, "oper"), person(cfg, "member")
    monkeypatch.setenv("AURORA_OPERATORS", oper.user_id)
    get_settings.cache_clear()
    async with replica(cfg) as (url, _):
        a = await client(url, author, "general")
        ids = []
        for i in range(3):
            frame = {"type": "message", "room": "general", "text": f"t{i}"}
            ids.append((await a.request(frame))["id"])
        o, m = await client(url, oper, room=None), await client(url, member, room=None)
        assert (await o.request({"type": "delete", "room": "general", "id": ids[0]}))[
            "type"
        ] == "ack"
        refused = await m.request({"type": "delete", "room": "general", "id": ids[1]})
        assert refused["code"] == "forbidden"
        assert (await a.request({"type": "delete", "room": "general", "id": ids[2]}))[
            "type"
        ] == "ack"
    stream = layout(cfg).room_stream_key("general")
    queued = [parse_entry(i, f) for i, f in redis_client(cfg.redis_url).xrange(stream)]
    drain(cfg)
    # The same deletes applied again (a crashed run's batch) log nothing twice.
    audit.record_message_deletes(
        database(cfg), [e for e in queued if getattr(e, "kind", None) == "delete"]
    )
    logged = list(database(cfg)[audit.COLLECTION].find())
    assert [(e["action"], e["actor"]["user_id"], e["operator"], e["target"]["user_id"],
             e["detail"]["message_id"]) for e in logged] == [
        ("message.delete", oper.user_id, True, author.user_id, ids[0])
    ]  # fmt: skip


async def test_a_change_is_refused_with_a_clear_code_and_nothing_is_queued(cfg, api):
    alice = person(cfg, "alice")
    r = redis_client(cfg.redis_url)
    async with replica(cfg) as (url, _):
        a = await client(url, alice, ROOM)
        first = (await a.request({"type": "message", "room": ROOM, "text": "first"}))["id"]
        for i in range(45):  # past the window of 40
            await a.request({"type": "message", "room": ROOM, "text": f"n{i}"})
        recent = (await a.request({"type": "message", "room": ROOM, "text": "recent"}))["id"]
        unknown = f"{int(recent.split('-')[0]) + 10_000}-0"
        stream = layout(cfg).room_stream_key(ROOM)
        queued = r.xlen(stream)

        async def code(frame: dict) -> str:
            reply = await a.request(frame | {"room": ROOM})
            return reply.get("code", reply["type"])

        assert await code({"type": "edit", "id": first, "text": "x"}) == "use_rest"
        assert await code({"type": "edit", "id": "1-1", "text": "x"}) == "use_rest"
        assert await code({"type": "edit", "id": unknown, "text": "x"}) == "not_found"
        assert await code({"type": "delete", "id": unknown}) == "not_found"
        assert await code({"type": "edit", "id": "not-an-id", "text": "x"}) == "invalid_id"
        assert await code({"type": "edit", "id": recent, "text": " "}) == "empty_text"
        assert await code({"type": "edit", "id": recent, "text": "x" * 5000}) == "too_long"
        assert r.xlen(stream) == queued
        assert await code({"type": "delete", "id": recent}) == "ack"
        assert await code({"type": "edit", "id": recent, "text": "x"}) == "deleted"
        again = await a.request({"type": "delete", "room": ROOM, "id": recent})
        assert (again["type"], again["id"], again["duplicate"]) == ("ack", recent, True)
        assert r.xlen(stream) == queued + 1
        # Changes have their own rate limit (10 per second per user and room).
        target = (await a.request({"type": "message", "room": ROOM, "text": "t"}))["id"]
        edits = [await code({"type": "edit", "id": target, "text": f"t{i}"}) for i in range(12)]
        assert "rate_limited" in edits and "ack" in edits
        await a.ws.close()
    drain(cfg)
    rate_key = layout(cfg).change_rate_key(ROOM, alice.user_id)
    time.sleep(max(r.pttl(rate_key), 0) / 1000)  # the limit's window
    # The REST twin reaches the old message through MongoDB, and answers
    # not_found for an id that never existed: a 404, never a 5xx.
    path = f"/api/rooms/{ROOM}/messages/{first}"
    assert rest(api, "PATCH", path, alice, {"text": "first, edited"})[0] == 200
    assert rest(api, "PATCH", f"/api/rooms/{ROOM}/messages/1-1", alice, {"text": "x"}) == (
        404, {"error": "No such message", "code": "not_found"},
    )  # fmt: skip
    assert rest(api, "DELETE", f"/api/rooms/{ROOM}/messages/{recent}", alice)[1]["unchanged"]
    drain(cfg)
    doc = database(cfg)[messages.COLLECTION].find_one({"_id": messages.stored_key(ROOM, first)})
    assert doc["text"] == "first, edited" and doc["edited_at"] is not None


async def test_a_change_that_reaches_the_drain_before_its_message_is_applied_when_it_arrives(cfg):
    alice = person(cfg, "alice")
    r = redis_client(cfg.redis_url)
    async with replica(cfg) as (url, _):
        a = await client(url, alice, ROOM)
        message = (await a.request({"type": "message", "room": ROOM, "text": "hello"}))["id"]
        await a.request({"type": "edit", "room": ROOM, "id": message, "text": "hello, edited"})
        await a.ws.close()
    # One run takes the message and dies before storing it; another run gets
    # the edit first: it is parked, then applied when the message is reclaimed.
    ensure_group(r, layout(cfg).stream_keys())
    r.xreadgroup(GROUP, "died", {layout(cfg).room_stream_key(ROOM): ">"}, count=1)
    drain(cfg)
    db = database(cfg)
    assert db[message_state.PARKED].count_documents({}) == 1
    assert db[messages.COLLECTION].count_documents({}) == 0
    drain(cfg, claim_idle_ms=0)
    assert stored_state(cfg) == {message: {"text": "hello, edited", "deleted": False}}
    assert db[message_state.PARKED].count_documents({}) == 0


def test_stored_messages_are_rekeyed_once_even_after_a_migration_that_crashed(cfg):
    db = database(cfg)
    entries = [StreamEntry(f"1700000000000-{i}", ROOM, "u1", "alice", f"m{i}") for i in range(7)]
    old = []
    for entry in entries:  # the shape of the previous release: _id is the stream id
        doc = messages.document(entry)
        doc["_id"] = doc.pop("id")
        old.append(doc)
    db[messages.COLLECTION].insert_many(old)
    before = history.page(db, ROOM, cfg, limit=50)
    # A run that crashed after inserting two copies, before deleting their originals.
    db[messages.COLLECTION].insert_many([messages.document(e) for e in entries[:2]])

    assert migrations.rekey_messages(db, batch_size=3) == 7
    assert migrations.rekey_messages(db) == 0
    keys = sorted(d["_id"] for d in db[messages.COLLECTION].find({}, {"_id": 1}))
    assert keys == sorted(messages.stored_key(ROOM, e.id) for e in entries)
    assert history.page(db, ROOM, cfg, limit=50) == before


async def test_a_deleted_messages_attachment_links_are_refused_to_everyone(cfg, s3, s3_endpoint):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    request = attachments.UploadRequest(filename="cat.png", content_type="image/png", size=len(PNG))
    grant = attachments.create_upload(request, alice.user_id, cfg, s3)
    posted = httpx.post(grant["upload"]["url"], data=grant["upload"]["fields"],
                        files={"file": ("f", PNG)})  # fmt: skip
    assert posted.status_code in (200, 204)
    url = grant["attachment"]["url"]
    r = redis_client(cfg.redis_url)

    def may_download(who: Person) -> bool:
        try:
            membership.check_download(url, who, cfg, s3, r)
        except ForbiddenError:
            return False
        return True

    served = dataclasses.replace(cfg, s3_endpoint_url=s3_endpoint)
    async with replica(served) as (ws_url, _):
        a = await client(ws_url, alice, ROOM)
        frame = {"type": "message", "room": ROOM, "text": "", "attachments": [grant["attachment"]]}
        message = (await a.request(frame))["id"]
        assert may_download(alice) and may_download(bob)
        assert (await a.request({"type": "delete", "room": ROOM, "id": message}))["type"] == "ack"
        await a.ws.close()
    assert not may_download(alice) and not may_download(bob)
    drain(cfg)
    doc = database(cfg)[messages.COLLECTION].find_one({"id": message})
    assert (doc["deleted"], doc["attachments"], doc["text"]) == (True, [], "")


_ids = st.sampled_from(["1-0", "0-0", "x", "", "1-", "99999999999999999999999-0", "%2F", "1-0/2"])
_bodies = st.one_of(
    st.none(),
    st.sampled_from(["{not json", "[]", "null", '"x"', "1e999"]),
    st.fixed_dictionaries({}, optional={
        "text": st.one_of(st.text(max_size=30), st.integers(), st.none(), st.just("x" * 5000)),
        "id": st.one_of(_ids, st.integers(), st.none()),
        "extra": st.text(max_size=5),
    }),
)  # fmt: skip


_routes = st.sampled_from([
    ("PATCH", "/api/rooms/{room}/messages/{id}"), ("DELETE", "/api/rooms/{room}/messages/{id}"),
    ("PUT", "/api/rooms/{room}/messages/{id}/reactions/{emoji}"),
    ("DELETE", "/api/rooms/{room}/messages/{id}/reactions/{emoji}"),
    ("POST", "/api/rooms/{room}/read"), ("GET", "/api/rooms/{room}/receipts"),
])  # fmt: skip
_emoji = st.sampled_from(
    ["👍", "%F0%9F%91%8D", ":+1:", "", "x" * 70, "🏳️‍🌈", "%00", "..", "👍" * 17]
)


def test_no_input_makes_a_message_change_route_answer_5xx(cfg, api):
    alice = person(cfg, "alice")

    @hypothesis_settings(max_examples=60, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(_routes, st.sampled_from([ROOM, "a b", "dm:x", "a" * 65]), _ids, _emoji, _bodies)
    def check(route, room, message_id, emoji, body):
        method, template = route
        path = template.format(room=room, id=message_id, emoji=emoji)
        status, answer = rest(api, method, path, alice, body)
        assert status < 500, (method, path, body, answer)
        if status >= 400:
            assert set(answer) == {"error", "code"}, answer

    check()


async def test_reactions_count_once_within_a_budget_live_and_in_history(cfg, api):
    alice, bob = person(cfg, "alice"), person(cfg, "bob")
    budget = dataclasses.replace(cfg, max_reactions_per_user=2)
    async with replica(budget) as (url, _):
        a, b = await client(url, alice, ROOM), await client(url, bob, ROOM)
        message = (await a.request({"type": "message", "room": ROOM, "text": "vote"}))["id"]

        async def react(who: Client, emoji: str, on: bool = True) -> dict:
            return await who.request(
                {"type": "react", "room": ROOM, "id": message, "emoji": emoji, "on": on}
            )

        assert (await react(a, "👍"))["duplicate"] is False
        assert (await react(a, "👍"))["duplicate"] is True  # set semantics: counted once
        assert (await react(b, "👍"))["type"] == "ack"
        assert (await react(a, "🎉"))["type"] == "ack"
        assert (await react(a, "🔥"))["code"] == "too_many_reactions"  # budget of 2
        assert (await react(a, ":fire:"))["code"] == "invalid_emoji"
        last = (await react(b, "👍", on=False))["id"]
        assert (await react(b, "👍", on=False))["duplicate"] is True
        await a.read_until(last)
        frames = [f for f in a.live.frames if f["type"] == "react"]
        assert [(f["user"], f["emoji"], f["on"]) for f in frames] == [
            ("alice", "👍", True), ("bob", "👍", True), ("alice", "🎉", True),
            ("bob", "👍", False),
        ]  # fmt: skip
        assert frames[1]["reactions"] == [{"emoji": "👍", "count": 2}]
        assert frames[-1]["reactions"] == [{"emoji": "🎉", "count": 1}, {"emoji": "👍", "count": 1}]

        # Resume replays them in order, with the counts of their time.
        c = await client(url, person(cfg, "carol"), ROOM, since=message)
        await c.read_until(last)
        assert [f for f in c.live.frames if f["type"] == "react"] == frames
        for who in (a, b, c):
            await who.ws.close()
    drain(cfg)
    seen_by = {
        who.name: history.page(database(cfg), ROOM, cfg, limit=5, viewer=who.user_id)
        for who in (alice, bob)
    }
    assert seen_by["alice"]["messages"][0]["reactions"] == [
        {"emoji": "🎉", "count": 1, "me": True}, {"emoji": "👍", "count": 1, "me": True},
    ]  # fmt: skip
    assert seen_by["bob"]["messages"][0]["reactions"] == [
        {"emoji": "🎉", "count": 1, "me": False}, {"emoji": "👍", "count": 1, "me": False},
    ]  # fmt: skip

    # Over REST, on a message older than the window: counted from MongoDB.
    redis_client(cfg.redis_url).delete(layout(cfg).window_key(ROOM))
    path = f"/api/rooms/{ROOM}/messages/{message}/reactions"
    assert rest(api, "PUT", f"{path}/👍", bob)[0] == 200
    assert rest(api, "PUT", f"{path}/👍", bob)[1]["unchanged"] is True
    assert rest(api, "DELETE", f"{path}/🎉", alice)[0] == 200
    assert rest(api, "PUT", f"{path}/shrug", alice) == (
        400, {"error": "A reaction is a Unicode emoji (👍), not text or a shortcode",
              "code": "invalid_emoji"},
    )  # fmt: skip
    drain(cfg)
    got = history.page(database(cfg), ROOM, cfg, limit=5, viewer=bob.user_id)["messages"][0]
    assert got["reactions"] == [{"emoji": "👍", "count": 2, "me": True}]


async def test_reacting_in_a_room_you_may_not_read_is_refused_on_both_paths(cfg, api):
    owner, outsider = person(cfg, "owner"), person(cfg, "outsider")
    status, _ = rest(api, "POST", "/api/rooms", owner, {"room": ROOM, "visibility": "private"})
    assert status == 201
    async with replica(cfg) as (url, _):
        o = await client(url, owner, ROOM)
        message = (await o.request({"type": "message", "room": ROOM, "text": "private"}))["id"]
        x = await client(url, outsider, room=None)
        frame = {"type": "react", "room": ROOM, "id": message, "emoji": "👍", "on": True}
        assert (await x.request(frame))["code"] == "forbidden"
        # Refused before any lookup: an outsider learns nothing of the room's ids.
        for probe in ("1-1", message, f"{message}9"):
            reply = await x.request({"type": "delete", "room": ROOM, "id": probe})
            assert reply["code"] == "forbidden", reply
        for who in (o, x):
            await who.ws.close()
    path = f"/api/rooms/{ROOM}/messages/{message}/reactions/👍"
    assert rest(api, "PUT", path, outsider)[0] == 403
    assert rest(api, "PUT", path, owner)[0] == 200


def test_a_change_folded_into_a_message_already_stored_is_applied_to_the_stored_one(cfg):
    """A crashed run stored the message; the next run reads it again with its
    edit in the same batch: the edit reaches the stored document."""
    r, db = redis_client(cfg.redis_url), database(cfg)
    stream = layout(cfg).room_stream_key(ROOM)
    message_id = r.xadd(stream, StreamEntry("0-0", ROOM, "u1", "alice", "before", n=1).fields())
    edit = change_fields("edit", ROOM, "u1", "alice", message_id, text="after")
    r.xadd(stream, edit)
    stored = messages.document(StreamEntry(message_id, ROOM, "u1", "alice", "before", n=1))
    db[messages.COLLECTION].insert_one(stored)
    drain(cfg)
    assert stored_state(cfg) == {message_id: {"text": "after", "deleted": False}}


def test_a_run_that_knows_a_message_another_run_changed_since_loses_neither_change(cfg):
    """Run A stores a message (and knows it, unread since); run B adds a
    reaction to it; then A applies another without reading first: its write
    is conditional on what it knew, so it reads again and both reactions stay."""
    r, db = redis_client(cfg.redis_url), database(cfg)
    first, second = (
        deployment_drain(cfg, consumer=name, block_ms=10) for name in ("first", "second")
    )
    stream = layout(cfg).room_stream_key(ROOM)
    message_id = r.xadd(stream, StreamEntry("0-0", ROOM, "u1", "alice", "hi", n=1).fields())
    first.run(lambda: True, exit_when_idle=True)
    assert first.known.get(messages.stored_key(ROOM, message_id)) is not None
    r.xadd(stream, change_fields("react", ROOM, "u2", "bob", message_id, emoji="👍"))
    second.run(lambda: True, exit_when_idle=True)
    r.xadd(stream, change_fields("react", ROOM, "u3", "carol", message_id, emoji="👍"))
    first.run(lambda: True, exit_when_idle=True)
    assert stored_reactions(cfg) == {message_id: [{"emoji": "👍", "count": 2}]}
    doc = db[messages.COLLECTION].find_one({"_id": messages.stored_key(ROOM, message_id)})
    assert doc["rev"] == 2


def test_an_edit_is_stored_as_written_even_on_a_message_stored_before_revisions(cfg):
    """A text that reads like a field path is stored as text, and a message
    stored before documents carried `rev` takes its changes, then counts
    them from there."""
    r, db = redis_client(cfg.redis_url), database(cfg)
    stream = layout(cfg).room_stream_key(ROOM)
    message_id = r.xadd(stream, StreamEntry("0-0", ROOM, "u1", "alice", "before", n=1).fields())
    old = messages.document(StreamEntry(message_id, ROOM, "u1", "alice", "before", n=1))
    del old["rev"]
    db[messages.COLLECTION].insert_one(old)
    for text in ("$text", "$$ROOT"):
        r.xadd(stream, change_fields("edit", ROOM, "u1", "alice", message_id, text=text))
        drain(cfg)  # a run of its own: reads the document, then writes it
        assert stored_state(cfg) == {message_id: {"text": text, "deleted": False}}
    assert db[messages.COLLECTION].find_one({"_id": old["_id"]})["rev"] == 2


def test_a_run_changes_more_messages_than_one_read_holds_that_an_earlier_run_stored(cfg):
    """A run that knows none of them reads the messages it changes a few
    dozen at a time: every one is found and changed, none is parked."""
    r, db = redis_client(cfg.redis_url), database(cfg)
    stream = layout(cfg).room_stream_key(ROOM)
    ids = [r.xadd(stream, StreamEntry("0-0", ROOM, "u1", "alice", f"m{i}", n=i + 1).fields())
           for i in range(60)]  # fmt: skip
    drain(cfg)
    for message_id in ids:
        r.xadd(stream, change_fields("edit", ROOM, "u1", "alice", message_id, text="edited"))
    drain(cfg)
    assert stored_state(cfg) == {i: {"text": "edited", "deleted": False} for i in ids}
    assert db[message_state.PARKED].count_documents({}) == 0
