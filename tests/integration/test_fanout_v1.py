"""Protocol v1 against a replica on real Redis: authentication without a token
in the URL, rooms, idempotent sends with acks, resume, limits, operations."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import time
from types import SimpleNamespace

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from aurora import membership
from aurora.backends import async_redis_client, layout
from aurora.keyspace import Layout, room_channel
from aurora.sending import Sender
from aurora.tokens import issue_token
from fanout import memory
from fanout.connection_limit import ConnectionLimit
from tests.conftest import on_single_and_cluster, plain_client
from tests.support.fanout import (
    receive_json,
    replica,
    send_json,
    settle,
    token_for,
)


async def v1(url: str, settings, name: str):
    """A v1 client authenticated with the `auth` frame; returns it after `ready`."""
    ws = await connect(url)
    await send_json(ws, {"type": "auth", "token": token_for(settings, name)})
    assert await receive_json(ws) == {"type": "ready", "user": name, "user_id": f"id-{name}"}
    return ws


async def join(ws, room: str, since: str | None = None) -> dict:
    frame = {"type": "join", "room": room} | ({"since": since} if since else {})
    await send_json(ws, frame)
    joined = await receive_json(ws)
    assert joined["type"] == "joined" and joined["room"] == room
    return joined


def subscribed_rooms(r, lay: Layout) -> set[str]:
    """The rooms some replica subscribes to: shard channels on a cluster."""
    pattern = room_channel("*")  # the room's partition tag on a cluster: matched by *
    if lay.cluster:  # each node knows its own shard channels' subscribers
        found = r.pubsub_shardchannels(pattern, target_nodes="all")
    else:
        found = r.pubsub_channels(pattern)
    return {lay.room_of_channel(name) for name in found}


async def closed_with(ws, timeout: float = 5.0) -> int:
    with pytest.raises(ConnectionClosed) as caught:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return caught.value.rcvd.code


# -- authentication ---------------------------------------------------------------


async def test_a_client_authenticates_with_its_first_frame_and_joins_a_room(settings):
    async with replica(settings) as (url, _):
        alice = await v1(url, settings, "alice")
        assert await join(alice, "dev") == {
            "type": "joined", "room": "dev", "recovered": True, "missed": 0,
        }  # fmt: skip
        await send_json(alice, {"type": "message", "room": "dev", "text": "hi", "client_id": "c1"})
        first, second = await receive_json(alice), await receive_json(alice)
        await alice.close()
    by_type = {first["type"]: first, second["type"]: second}
    message, ack = by_type["message"], by_type["ack"]
    assert ack == {"type": "ack", "client_id": "c1", "id": message["id"], "duplicate": False}
    assert message["room"] == "dev" and message["client_id"] == "c1"
    assert message["user"] == "alice" and message["user_id"] == "id-alice"


async def test_no_auth_frame_in_time_closes_with_4001(settings):
    quick = dataclasses.replace(settings, auth_timeout_seconds=0.3)
    async with replica(quick) as (url, _), connect(url) as ws:
        assert await closed_with(ws) == 4001


@pytest.mark.parametrize(
    "first",
    [
        {"type": "join", "room": "general"},
        {"type": "auth", "token": "forged"},
        {"type": "auth", "token": 12},
        {"text": "hello"},
    ],
)
async def test_a_first_frame_that_is_not_a_valid_auth_closes_with_4001(settings, first):
    async with replica(settings) as (url, _), connect(url) as ws:
        await send_json(ws, first)
        assert await closed_with(ws) == 4001


async def test_a_token_offered_as_subprotocol_is_accepted_and_never_echoed(settings):
    token = token_for(settings, "alice")
    async with replica(settings) as (url, _):
        async with connect(url, subprotocols=["aurora.v1", f"bearer.{token}"]) as ws:
            assert ws.subprotocol == "aurora.v1"
            assert token not in str(ws.response.headers)
            assert (await receive_json(ws))["type"] == "ready"
        with pytest.raises(InvalidStatus) as caught:
            async with connect(url, subprotocols=["aurora.v1", "bearer.forged"]):
                pass
        assert caught.value.response.status_code == 401


async def test_a_token_that_expires_while_connected_closes_with_4001(settings):
    strict = dataclasses.replace(settings, jwt_leeway_seconds=0, jwt_ttl_seconds=1)
    async with replica(strict) as (url, _):
        ws = await connect(url)
        await send_json(ws, {"type": "auth", "token": issue_token("id-ann", "ann", strict)})
        assert (await receive_json(ws))["type"] == "ready"
        assert await closed_with(ws, timeout=4) == 4001


async def test_re_auth_extends_the_session_but_as_another_user_closes_with_4003(settings):
    async with replica(settings) as (url, _):
        ws = await v1(url, settings, "alice")
        await send_json(ws, {"type": "auth", "token": token_for(settings, "alice")})
        assert (await receive_json(ws))["type"] == "ready"
        await send_json(ws, {"type": "auth", "token": token_for(settings, "mallory")})
        assert await closed_with(ws) == 4003


async def test_tokens_in_urls_are_never_logged(settings, caplog):
    good, bad = token_for(settings, "alice"), token_for(settings, "bob")[:-4] + "AAAA"
    caplog.set_level(logging.DEBUG)
    async with replica(settings) as (url, _):
        async with connect(f"{url}/?token={good}") as ws:
            await ws.send(json.dumps({"text": "hi"}))
            await receive_json(ws)
        with pytest.raises(InvalidStatus):
            async with connect(f"{url}/?token={bad}"):
                pass
        offer = ["aurora.v1", f"bearer.{good}"]
        async with connect(url, subprotocols=offer) as ws:
            await receive_json(ws)
    server_side = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    assert any("token=[redacted]" in r.getMessage() for r in server_side)  # DEBUG logs it
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in server_side)
    assert good not in logged and bad not in logged


# -- rooms ------------------------------------------------------------------------


async def test_rooms_deliver_only_to_their_members_and_replicas_subscribe_per_room(settings):
    r, lay = plain_client(settings.redis_url), layout(settings)
    async with replica(settings) as (url, _):
        alice, bob = await v1(url, settings, "alice"), await v1(url, settings, "bob")
        await join(alice, "one")
        await join(alice, "two")
        await join(bob, "one")
        assert subscribed_rooms(r, lay) == {"one", "two"}
        await send_json(alice, {"type": "message", "room": "two", "text": "only alice"})
        await send_json(alice, {"type": "message", "room": "one", "text": "both"})
        assert (await receive_json(alice))["text"] == "only alice"
        assert (await receive_json(alice))["text"] == "both"
        assert (await receive_json(bob))["text"] == "both"
        await send_json(alice, {"type": "leave", "room": "two"})
        assert await receive_json(alice) == {"type": "left", "room": "two"}
        assert subscribed_rooms(r, lay) == {"one"}
        await send_json(alice, {"type": "message", "room": "two", "text": "gone"})
        assert (await receive_json(alice))["code"] == "not_joined"
        await alice.close()
        await bob.close()
    r.close()


@on_single_and_cluster
async def test_leaving_and_joining_again_at_once_keeps_the_room_live(settings, caplog):
    """The room's last member here leaves and joins again: the replica's own
    unsubscribe, confirmed after the join, is not a slot moving away (a
    reconnect of the whole subscriber, losing what is not replayed)."""
    lay, rooms = layout(settings), {}
    for i in itertools.count():  # a room in every partition: every node's link
        rooms.setdefault(lay.partition_of(f"room-{i}"), f"room-{i}")
        if len(rooms) == lay.partitions:
            break
    async with replica(settings) as (url, _):
        alice = await v1(url, settings, "alice")
        frames = []
        for room in rooms.values():
            await join(alice, room)
            await send_json(alice, {"type": "leave", "room": room})
            await send_json(alice, {"type": "join", "room": room})
            frames += [(await receive_json(alice))["type"] for _ in range(2)]
            await send_json(alice, {"type": "typing", "room": room, "typing": True})
            frames.append((await receive_json(alice))["type"])
            await send_json(alice, {"type": "leave", "room": room})
            assert (await receive_json(alice))["type"] == "left"
        await alice.close()
    assert frames == ["left", "joined", "typing"] * len(rooms)
    assert "subscriber lost a connection" not in caplog.text


async def test_typing_reaches_the_room_and_is_not_stored(settings):
    async with replica(settings) as (url, _):
        alice, bob = await v1(url, settings, "alice"), await v1(url, settings, "bob")
        await join(alice, "dev")
        await join(bob, "dev")
        await send_json(alice, {"type": "typing", "room": "dev", "typing": True})
        assert await receive_json(bob) == {
            "type": "typing", "room": "dev", "user": "alice", "user_id": "id-alice", "typing": True,
        }  # fmt: skip
        await send_json(bob, {"type": "ping"})
        assert await receive_json(bob) == {"type": "pong"}
        await alice.close()
        await bob.close()
    r = plain_client(settings.redis_url)
    assert r.xlen(layout(settings).room_stream_key("dev")) == 0
    r.close()


# -- the send script: idempotency, backpressure --------------------------------------


@on_single_and_cluster
async def test_a_message_sent_twice_with_one_client_id_is_stored_and_broadcast_once(
    settings, redis_layout
):
    async with replica(settings) as (url, _):
        alice = await v1(url, settings, "alice")
        await join(alice, "dev")
        frame = {"type": "message", "room": "dev", "text": "once", "client_id": "abc"}
        await send_json(alice, frame)
        await send_json(alice, frame)
        frames = []
        # The acks come on the socket, the broadcast through Redis: either may be first.
        while sum(f["type"] == "ack" for f in frames) < 2 or not any(
            f["type"] == "message" for f in frames
        ):
            frames.append(await receive_json(alice))
        # A second broadcast, were there one, would follow within the same round trip.
        with contextlib.suppress(TimeoutError):
            frames.append(await receive_json(alice, timeout=0.5))
        await alice.close()
    acks = [f for f in frames if f["type"] == "ack"]
    messages = [f for f in frames if f["type"] == "message"]
    assert len(messages) == 1 and [a["id"] for a in acks] == [messages[0]["id"]] * 2
    assert [a["duplicate"] for a in acks] == [False, True]
    r = plain_client(settings.redis_url)
    [(entry_id, fields)] = r.xrange(redis_layout.room_stream_key("dev"))
    assert entry_id == messages[0]["id"] and fields["client_id"] == "abc"  # stored with it
    r.close()


async def test_sends_over_the_backlog_bound_get_backpressure_and_are_not_stored(settings):
    bounded = dataclasses.replace(settings, max_backlog=2, rate_limit_messages=100)
    async with replica(bounded) as (url, _):
        alice = await v1(url, bounded, "alice")
        await join(alice, "dev")
        replies = []
        for i in range(3):
            await send_json(alice, {"type": "message", "room": "dev", "text": f"m{i}",
                                    "client_id": f"c{i}"})  # fmt: skip
            replies.append(await receive_json(alice))
            if i < 2:
                replies.append(await receive_json(alice))  # the broadcast and the ack
        await alice.close()
    assert sorted(f["type"] for f in replies[:4]) == ["ack", "ack", "message", "message"]
    assert replies[4] == replies[4] | {"type": "error", "code": "backpressure", "client_id": "c2"}
    r = plain_client(settings.redis_url)
    assert r.xlen(layout(settings).room_stream_key("dev")) == 2
    r.close()


# -- resume -------------------------------------------------------------------------


@on_single_and_cluster
async def test_a_rejoin_with_since_replays_exactly_what_was_missed_then_live(settings):
    fast = dataclasses.replace(settings, rate_limit_messages=100)
    async with replica(fast) as (url, _):
        alice, bob = await v1(url, fast, "alice"), await v1(url, fast, "bob")
        await join(alice, "dev")
        await join(bob, "dev")
        await send_json(bob, {"type": "message", "room": "dev", "text": "seen"})
        seen = await receive_json(alice)
        await alice.close()
        for text in ("missed 1", "missed 2"):
            await send_json(bob, {"type": "message", "room": "dev", "text": text})
        # Bob sees his own messages once they are accepted.
        assert [(await receive_json(bob))["text"] for _ in range(3)] == [
            "seen", "missed 1", "missed 2",
        ]  # fmt: skip
        alice = await v1(url, fast, "alice")
        assert await join(alice, "dev", since=seen["id"]) == {
            "type": "joined", "room": "dev", "recovered": True, "missed": 2,
        }  # fmt: skip
        await send_json(bob, {"type": "message", "room": "dev", "text": "live"})
        got = [(await receive_json(alice))["text"] for _ in range(3)]
        await alice.close()
        await bob.close()
    assert got == ["missed 1", "missed 2", "live"]


async def test_a_resume_older_than_the_window_says_it_is_incomplete(settings):
    small = dataclasses.replace(settings, resume_window=3, rate_limit_messages=100)
    r = async_redis_client(settings.redis_url)
    sender = Sender(r, small, layout(small))
    ids = [(await sender.send(room="dev", user_id="u", username="u", text=f"m{i}")).id
           for i in range(6)]  # fmt: skip
    assert await r.xlen(layout(small).window_key("dev")) == 3
    async with replica(small) as (url, _):
        alice = await v1(url, small, "alice")
        assert await join(alice, "dev", since=ids[0]) == {
            "type": "joined", "room": "dev", "recovered": False, "missed": 3,
        }  # fmt: skip
        assert [(await receive_json(alice))["text"] for _ in range(3)] == ["m3", "m4", "m5"]
        await send_json(alice, {"type": "join", "room": "other", "since": "not-an-id"})
        assert (await receive_json(alice))["code"] == "invalid_id"
        await alice.close()
    await r.aclose()


async def test_a_replica_that_loses_redis_replays_what_its_clients_missed(settings):
    fast = dataclasses.replace(settings, rate_limit_messages=1000)
    r, lay = async_redis_client(settings.redis_url), layout(settings)
    sender = Sender(r, fast, lay)
    async with replica(fast) as (url, server):
        alice = await v1(url, fast, "alice")
        await join(alice, "dev")
        await sender.send(room="dev", user_id="u", username="u", text="before")
        assert (await receive_json(alice))["text"] == "before"
        # The subscriber's connections drop (on a cluster, one per node).
        everywhere = {"target_nodes": "all"} if lay.cluster else {}
        await r.client_kill_filter(_type="pubsub", **everywhere)
        sent = [f"during {i}" for i in range(20)]
        for text in sent:
            await sender.send(room="dev", user_id="u", username="u", text=text)
        await asyncio.wait_for(server.subscriber._connected.wait(), 5)
        await settle()
        await sender.send(room="dev", user_id="u", username="u", text="after")
        got = [(await receive_json(alice))["text"] for _ in range(len(sent) + 1)]
        with pytest.raises(TimeoutError):
            await receive_json(alice, timeout=0.3)  # and nothing twice
        await alice.close()
    await r.aclose()
    assert got == [*sent, "after"]


# -- limits ------------------------------------------------------------------------


async def test_the_connection_cap_is_per_user_across_replicas_and_heals(settings):
    capped = dataclasses.replace(settings, max_connections_per_user=2, connection_lease_seconds=1)
    r = async_redis_client(settings.redis_url)
    async with replica(capped) as (url_a, _), replica(capped) as (url_b, _):
        first = await v1(url_a, capped, "alice")
        second = await v1(url_b, capped, "alice")
        third = await connect(url_a)
        await send_json(third, {"type": "auth", "token": token_for(capped, "alice")})
        assert await closed_with(third) == 4029
        await v1(url_a, capped, "bob")  # other users are not affected
        await second.close()
        await asyncio.sleep(0.1)
        second = await v1(url_b, capped, "alice")  # a closed connection frees its slot
        await first.close()
        await second.close()
        # A replica killed without cleanup leaves leases nobody renews...
        dead = ConnectionLimit(r, cap=2, lease_seconds=1)
        assert await dead.acquire("id-alice", "dead:1") and await dead.acquire("id-alice", "dead:2")
        refused = await connect(url_a)
        await send_json(refused, {"type": "auth", "token": token_for(capped, "alice")})
        assert await closed_with(refused) == 4029
        await asyncio.sleep(1.2)  # ...and they stop counting after one lease.
        healed = await v1(url_b, capped, "alice")
        await healed.close()
    await r.aclose()


async def test_a_live_connection_keeps_its_slot_beyond_one_lease(settings):
    capped = dataclasses.replace(settings, max_connections_per_user=1, connection_lease_seconds=1)
    async with replica(capped) as (url, _):
        held = await v1(url, capped, "alice")
        await asyncio.sleep(1.5)  # renewed every lease/3
        late = await connect(url)
        await send_json(late, {"type": "auth", "token": token_for(capped, "alice")})
        assert await closed_with(late) == 4029
        await held.close()


async def test_a_replica_shutting_down_frees_its_clients_slots_for_the_next_one(settings):
    """Shutdown closes clients with 1012 so they reconnect elsewhere: there
    the user's slots must be free at once, not after a lease period."""
    capped = dataclasses.replace(settings, max_connections_per_user=2, connection_lease_seconds=60)
    async with replica(capped) as (elsewhere, _):
        async with replica(capped) as (url, _):
            held = [await v1(url, capped, "alice") for _ in range(2)]
            mine = [await v1(url, capped, "bob")]
        assert [await closed_with(ws) for ws in held + mine] == [1012, 1012, 1012]
        again = [await v1(elsewhere, capped, "alice") for _ in range(2)]
        for ws in again:
            await ws.close()


async def test_a_client_that_leaves_leaves_no_trace_in_the_hub(settings):
    async with replica(settings) as (url, server):
        alice, bob = await v1(url, settings, "alice"), await v1(url, settings, "bob")
        for room in ("a", "b", "c"):
            await join(alice, room)
        await join(bob, "b")
        await send_json(alice, {"type": "leave", "room": "a"})
        assert (await receive_json(alice))["type"] == "left"
        await alice.close()
        await settle()
        assert server.hub.rooms_of(server_side(server, "bob")) == ["b"]
        assert sorted(server.hub._rooms) == ["b"] and len(server.hub._joined) == 1
        await bob.close()
        await settle()
        assert not server.hub._rooms and not server.hub._joined


def server_side(server, name: str):
    """The replica's connection object of the one client of user `name`."""
    (session,) = server.users.of(f"id-{name}")
    return session.connection


async def test_every_refusal_of_a_send_names_its_client_id(settings):
    """So a client with several sends in flight knows which one was refused."""
    limited = dataclasses.replace(settings, rate_limit_messages=1)
    async with replica(limited) as (url, _):
        alice = await v1(url, limited, "alice")
        await send_json(alice, {"type": "message", "room": "dev", "text": "hi", "client_id": "a"})
        not_joined = await receive_json(alice)
        await join(alice, "dev")
        refusals = [not_joined]
        for frame in (
            {"text": "x" * 4001, "client_id": "b"},  # refused while parsing
            {"text": " ", "client_id": "c"},
            {"text": "ok", "client_id": "d"},  # accepted: ack + broadcast
            {"text": "too soon", "client_id": "e"},  # over the rate limit
            {"text": "hi", "client_id": "f" * 65},  # no valid client_id to name
        ):
            await send_json(alice, {"type": "message", "room": "dev", **frame})
            reply = await receive_json(alice)
            if frame["client_id"] == "d":
                assert reply["type"] in ("ack", "message")
                await receive_json(alice)
            else:
                refusals.append(reply)
        await send_json(alice, {"type": "leave", "room": 5})
        refusals.append(await receive_json(alice))
        await alice.close()
    assert [(f["type"], f.get("code"), f.get("client_id")) for f in refusals] == [
        ("error", "not_joined", "a"),
        ("error", "too_long", "b"),
        ("error", "empty_text", "c"),
        ("rate_limited", None, "e"),
        ("error", "bad_field", None),
        ("error", "bad_room", None),
    ]


async def test_text_over_the_limit_gets_too_long_and_the_connection_stays(settings):
    async with replica(settings) as (url, _):
        alice = await v1(url, settings, "alice")
        await join(alice, "dev")
        await send_json(alice, {"type": "message", "room": "dev", "text": "x" * 4001})
        assert (await receive_json(alice))["code"] == "too_long"
        await send_json(alice, {"type": "message", "room": "dev", "text": "x" * 4000})
        assert len((await receive_json(alice))["text"]) == 4000
        await alice.close()


async def test_a_client_that_stops_reading_is_closed_with_4008_and_others_get_everything(
    settings,
):
    tight = dataclasses.replace(settings, max_send_buffer_bytes=64 * 1024)
    r, lay = async_redis_client(settings.redis_url), layout(settings)
    publish = r.spublish if lay.cluster else r.publish
    async with replica(tight) as (url, server):
        fast = await v1(url, tight, "fast")
        slow = await v1(url, tight, "slow")
        await join(fast, "dev")
        await join(slow, "dev")
        slow.transport.pause_reading()  # the slow client stops reading its socket
        frame = json.dumps({"type": "message", "room": "dev", "text": "x" * 8000})
        count = 1500  # ~12 MB: more than the kernel's socket buffers hold
        received = 0

        async def read_all() -> None:
            nonlocal received
            while received < count:
                await fast.recv()
                received += 1

        reader = asyncio.create_task(read_all())
        for i in range(count):
            await publish(lay.room_channel("dev"), f"{10**12 + i}-0 {frame}")
        await asyncio.wait_for(reader, 30)
        slow.transport.resume_reading()
        assert await closed_with(slow, timeout=10) == 4008
        assert server.metrics.slow_disconnects._value.get() == 1
        await fast.close()
    await r.aclose()
    assert received == count


# -- operations --------------------------------------------------------------------


async def test_readyz_and_metrics_report_the_replica(settings):
    async with replica(settings) as (url, _):
        alice = await v1(url, settings, "alice")
        await join(alice, "dev")
        await send_json(alice, {"type": "message", "room": "dev", "text": "count me"})
        await receive_json(alice)
        base = url.replace("ws://", "http://")
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"{base}/readyz")
            metrics = await http.get(f"{base}/metrics")
        await alice.close()
    assert ready.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert "aurora_fanout_connections 1.0" in text
    assert "aurora_fanout_messages_in_total 1.0" in text
    assert "aurora_fanout_messages_out_total 1.0" in text
    assert "aurora_fanout_send_seconds_count 1.0" in text


async def test_readyz_is_503_while_redis_is_unreachable(settings):
    from local.servers import free_port

    dead = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    from fanout.server import FanoutServer

    server = FanoutServer(dataclasses.replace(dead, fanout_host="127.0.0.1", fanout_port=0))
    loop = asyncio.get_running_loop()
    stop, ready = loop.create_future(), loop.create_future()
    task = asyncio.create_task(server.run(stop, ready))
    port = await asyncio.wait_for(ready, 10)
    started = time.monotonic()
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        health = await http.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    stop.set_result(None)
    await asyncio.wait_for(task, 10)
    assert response.status_code == 503 and health.status_code == 200
    assert time.monotonic() - started < 5


async def test_a_client_that_does_not_answer_pings_is_closed_and_others_stay(settings):
    pinging = dataclasses.replace(settings, ping_interval_seconds=1)
    async with replica(pinging) as (url, _):
        alive = await v1(url, pinging, "alive")
        silent = await v1(url, pinging, "silent")
        silent.transport.pause_reading()  # reads no ping, answers no pong
        await asyncio.sleep(2.5)
        silent.transport.resume_reading()
        assert await closed_with(silent) == 1011
        await send_json(alive, {"type": "ping"})
        assert await receive_json(alive) == {"type": "pong"}
        await alive.close()


async def test_while_redis_is_down_sends_get_unavailable_and_service_resumes_after(
    settings, tmp_path
):
    """A real Redis stopped and restarted on the same port and data."""
    from local.servers import start_redis

    own = start_redis(tmp_path / "redis")
    port = int(own.url.rsplit(":", 1)[1].split("/")[0])
    restarted = None
    try:
        local = dataclasses.replace(settings, redis_url=own.url)
        async with replica(local) as (url, server):
            alice = await v1(url, local, "alice")
            await join(alice, "dev")
            await join(alice, "solo")
            own.stop()
            await send_json(alice, {"type": "message", "room": "dev", "text": "lost?",
                                    "client_id": "k1"})  # fmt: skip
            reply = await receive_json(alice)
            assert reply["type"] == "error" and reply["code"] == "unavailable"
            await send_json(alice, {"type": "leave", "room": "solo"})  # unsubscribing fails
            assert await receive_json(alice) == {"type": "left", "room": "solo"}
            await send_json(alice, {"type": "join", "room": "other"})
            assert (await receive_json(alice, timeout=10))["code"] == "unavailable"
            # A new client is told to retry: 503 at the upgrade if the token
            # check needs Redis (revocation), else 1011 when its slot cannot be taken.
            try:
                async with connect(f"{url}/?token={token_for(local, 'bob')}") as bob:
                    assert await closed_with(bob) == 1011
            except InvalidStatus as refused:
                assert refused.response.status_code == 503
            async with httpx.AsyncClient() as http:
                base = url.replace("ws://", "http://")
                assert (await http.get(f"{base}/readyz")).status_code == 503
                restarted = start_redis(tmp_path / "redis", port)
                await asyncio.wait_for(server.subscriber._connected.wait(), 10)
                assert (await http.get(f"{base}/readyz")).status_code == 200
            # The same client_id again: now it goes through, once.
            await send_json(alice, {"type": "message", "room": "dev", "text": "lost?",
                                    "client_id": "k1"})  # fmt: skip
            got = {(await receive_json(alice))["type"] for _ in range(2)}
            assert got == {"message", "ack"}
            await alice.close()
    finally:
        own.stop()
        if restarted is not None:
            restarted.stop()


async def test_the_membership_hook_can_refuse_a_room(settings):
    """The one rule REST reads ask too (`aurora.membership`)."""
    async with replica(settings) as (url, _):
        mirror = plain_client(settings.redis_url)
        membership.Mirror(mirror, "private:board").create("private", "id-bob", "")
        mirror.close()
        alice = await v1(url, settings, "alice")
        await send_json(alice, {"type": "join", "room": "private:board"})
        assert (await receive_json(alice))["code"] == "forbidden"
        assert (await join(alice, "public"))["recovered"] is True
        await alice.close()


async def test_repeated_typing_is_throttled_and_rate_limits_are_counted(settings):
    async with replica(settings) as (url, server):
        alice, bob = await v1(url, settings, "alice"), await v1(url, settings, "bob")
        await join(alice, "dev")
        await join(bob, "dev")
        for _ in range(3):
            await send_json(alice, {"type": "typing", "room": "dev", "typing": True})
        await send_json(alice, {"type": "typing", "room": "dev", "typing": False})
        got = [(await receive_json(bob))["typing"] for _ in range(2)]
        assert got == [True, False]  # the two repeats within a second were not relayed
        assert [(await receive_json(alice))["type"] for _ in range(2)] == ["typing"] * 2
        for i in range(4):
            await send_json(alice, {"type": "message", "room": "dev", "text": f"m{i}"})
        frames = [await receive_json(alice) for _ in range(4)]
        assert [f["type"] for f in frames].count("rate_limited") == 1
        assert server.metrics.rate_limited._value.get() == 1
        await alice.close()
        await bob.close()


async def test_when_the_token_check_cannot_decide_clients_are_told_to_retry(settings):
    """E.g. a revocation check that cannot reach Redis: 503 / 1011, not 401 / 4001."""
    from aurora.errors import UnavailableError

    async with replica(settings) as (url, server):

        async def undecided(token: object):
            raise UnavailableError("Cannot check the token now, retry")

        server.replica.authenticate = undecided
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"{url}/?token={token_for(settings, 'alice')}"):
                pass
        assert caught.value.response.status_code == 503
        async with connect(url) as ws:
            await send_json(ws, {"type": "auth", "token": token_for(settings, "alice")})
            assert await closed_with(ws) == 1011


# -- the broadcast fast path ------------------------------------------------------


class RawClient:
    """A v1 client on a bare socket, to see exactly which frames the server
    wrote and in what order (a websockets client hides what follows a close)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, token: str) -> RawClient:
        host, port = url.removeprefix("ws://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: aurora.v1, bearer.{token}\r\n\r\n".encode()
        )
        assert b" 101 " in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return cls(reader, writer)

    def send(self, opcode: Opcode, payload: bytes) -> None:
        self.writer.write(Frame(opcode, payload).serialize(mask=True))

    async def frame(self) -> tuple[Opcode, bytes] | None:
        """The next server frame (unmasked, unfragmented), or None at EOF."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(2), 5)
        except asyncio.IncompleteReadError:
            return None
        length = head[1] & 0x7F
        if length >= 126:
            extended = await self.reader.readexactly(2 if length == 126 else 8)
            length = int.from_bytes(extended, "big")
        return Opcode(head[0] & 0x0F), await self.reader.readexactly(length)


@pytest.mark.parametrize("started_by", ["client", "server"])
async def test_no_broadcast_is_written_after_a_close_frame(settings, started_by):
    """Broadcasts skip per-member checks: the connection takes itself out of
    the room's writers the moment its close frame is written, whoever began
    the closing handshake, while it is still a member of the room."""
    async with replica(settings) as (url, server):
        raw = await RawClient.open(url, token_for(settings, "alice"))
        assert (await raw.frame())[0] is Opcode.TEXT  # ready
        raw.send(Opcode.TEXT, json.dumps({"type": "join", "room": "dev"}).encode())
        assert json.loads((await raw.frame())[1])["type"] == "joined"
        connection = server_side(server, "alice")
        if started_by == "client":
            raw.send(Opcode.CLOSE, (1000).to_bytes(2, "big"))
        else:
            closing = asyncio.ensure_future(connection.close(1001, "going away"))
        while connection.protocol.state is State.OPEN:
            await asyncio.sleep(0.01)
        assert server.hub.is_member(connection, "dev")  # the session has not left yet
        server.hub.deliver_many("dev", [("99999999999999-0", '{"type":"message","text":"late"}')])
        frames = [await raw.frame()]
        while frames[-1] is not None and frames[-1][0] is not Opcode.CLOSE:
            frames.append(await raw.frame())
        if started_by == "server":
            raw.send(Opcode.CLOSE, (1000).to_bytes(2, "big"))
            await closing
        frames.append(await raw.frame())
        raw.writer.close()
    assert [opcode for opcode, _ in frames[:-1]] == [Opcode.CLOSE]
    assert frames[-1] is None  # then only the end of the stream


async def test_fan_out_connections_send_whole_messages_only(settings):
    """A fragmented send would let a broadcast land between its fragments."""
    async with replica(settings) as (url, server):
        alice = await v1(url, settings, "alice")
        with pytest.raises(TypeError):
            await server_side(server, "alice").send(["frag", "ments"])
        await alice.close()


async def test_after_a_wave_every_registry_of_the_replica_can_be_compacted(settings):
    """What `memory.release` compacts after a wave: every table is a dict or a
    set, shrunk in place, with what it held (here: a live member's)."""
    async with replica(settings) as (url, server):
        alice = await v1(url, settings, "alice")
        await join(alice, "dev")
        websockets_server = SimpleNamespace(all_connections={alice}, handler_tasks=set())
        tables = server._tables(websockets_server)
        assert tables and all(isinstance(t, dict | set) for t in tables)
        # asyncio's registry of tasks changes by itself (the collection in
        # `release` drops finished tasks): the replica's tables do not.
        tasks = getattr(getattr(asyncio.tasks, "_all_tasks", None), "data", None)
        own = [t for t in tables if t is not tasks]
        before = [dict(t) if isinstance(t, dict) else set(t) for t in own]
        memory.release(tables)
        assert [dict(t) if isinstance(t, dict) else set(t) for t in own] == before
        await send_json(alice, {"type": "message", "room": "dev", "text": "still here"})
        assert (await receive_json(alice))["text"] == "still here"
        await alice.close()
