"""One account cannot fill Redis: the per-user send budget across rooms, the
room-creation budget of WebSocket joins, resume windows that expire, and the
byte bound of the persistence backlog — each against real Redis."""

from __future__ import annotations

import dataclasses

from aurora.backends import async_redis_client, layout
from aurora.budget import SendBudget
from aurora.keyspace import budget_key, room_members_key
from aurora.sending import Backpressure, Sender
from tests.conftest import plain_client
from tests.integration.test_fanout_v1 import join, v1
from tests.support.fanout import receive_json, replica, send_json


async def test_one_user_sending_to_many_rooms_is_held_to_the_burst_and_stays_connected(settings):
    """The per-room limit (3/s) never triggers: one message to each of 25
    rooms; the budget across rooms lets the burst of 20 through, then answers
    `rate_limited` with a wait, and the connection keeps working. (The refill
    is slowed so that a slow machine's pace adds no message to the burst.)"""
    s = dataclasses.replace(settings, user_messages_per_second=0.1)
    async with replica(s) as (url, _):
        alice = await v1(url, s, "alice")
        rooms = [f"spread-{i}" for i in range(25)]
        for room in rooms:
            await join(alice, room)
        answers = []
        for i, room in enumerate(rooms):
            await send_json(
                alice, {"type": "message", "room": room, "text": "x", "client_id": f"c{i}"}
            )
            answers.append(await receive_json(alice))
            if answers[-1]["type"] == "message":  # its own broadcast, then the ack
                answers[-1] = await receive_json(alice)
        await send_json(alice, {"type": "ping"})
        assert await receive_json(alice) == {"type": "pong"}
        await alice.close()
    kinds = [a["type"] for a in answers]
    assert kinds == ["ack"] * 20 + ["rate_limited"] * 5
    assert all(0 < a["retry_after_ms"] <= 10_000 for a in answers[20:])
    assert [a["client_id"] for a in answers[20:]] == [f"c{i}" for i in range(20, 25)]


async def test_the_byte_budget_refuses_what_the_message_budget_would_allow(settings):
    s = dataclasses.replace(settings, user_bytes_per_window=10_000, user_bytes_window_seconds=10)
    client = async_redis_client(s.redis_url)
    budget = SendBudget(client, s)
    taken = [await budget.take("u1", 3000) for _ in range(4)]
    ttl = await client.pttl(budget_key("u1"))
    await client.aclose()
    assert taken[:3] == [None, None, None]
    # 1,000 bytes a second come back: the 4th 3,000-byte message waits ~2 s.
    assert 1_900 < taken[3].retry_after_ms <= 2_000
    assert 0 < ttl <= 11_000  # an idle user's budget leaves Redis


async def test_a_budget_refusal_debits_nothing(settings):
    s = dataclasses.replace(settings, user_message_burst=2, user_messages_per_second=0.001)
    s = dataclasses.replace(s, user_bytes_window_seconds=10**6)  # no refill meanwhile, to speak of
    client = async_redis_client(s.redis_url)
    budget = SendBudget(client, s)
    taken = [await budget.take("u2", 10) for _ in range(5)]
    state = await client.hgetall(budget_key("u2"))
    await client.aclose()
    assert taken[:2] == [None, None] and all(t is not None for t in taken[2:])
    assert float(state["m"]) < 1
    assert s.user_bytes_per_window - 20 <= float(state["b"]) < s.user_bytes_per_window - 19


async def test_joining_fresh_rooms_is_a_creation_budget_and_joining_used_rooms_is_free(settings):
    s = dataclasses.replace(settings, room_creations_per_minute=3)
    async with replica(s) as (url, _):
        bob = await v1(url, s, "bob")
        await join(bob, "bobs-room")
        alice = await v1(url, s, "alice")
        for i in range(3):
            await join(alice, f"fresh-{i}")
        await send_json(alice, {"type": "join", "room": "fresh-3"})
        refused = await receive_json(alice)
        await join(alice, "bobs-room")  # a room somebody uses: free
        await join(alice, "fresh-0")  # rejoining her own: free
        await alice.close()
        await bob.close()
    assert refused["type"] == "rate_limited" and 0 < refused["retry_after_ms"] <= 60_000
    r = plain_client(s.redis_url)
    assert not r.exists(room_members_key("fresh-3"))  # nothing recorded for the refused join
    r.close()


async def test_a_rooms_resume_window_expires_once_the_room_is_quiet(settings):
    s = dataclasses.replace(settings, resume_window_ttl_seconds=60)
    client = async_redis_client(s.redis_url)
    sender = Sender(client, s, layout(s))
    await sender.send(room="quiet", user_id="u1", username="alice", text="hi")
    ttl = await client.pttl(layout(s).window_key("quiet"))
    await client.aclose()
    assert 0 < ttl <= 60_000


async def test_the_backlog_is_bounded_in_bytes_as_well_as_entries(settings):
    s = dataclasses.replace(settings, max_backlog_bytes=64 * 1024, user_bytes_per_window=10**9)
    s = dataclasses.replace(s, user_message_burst=10_000, rate_limit_messages=10_000)
    client = async_redis_client(s.redis_url)
    sender = Sender(client, s, layout(s))
    outcomes = []
    for _ in range(40):  # 40 x 4 KB would be 160 KB
        outcomes.append(await sender.send(room="big", user_id="u1", username="a", text="z" * 4000))
        if isinstance(outcomes[-1], Backpressure):
            break
    used = await client.memory_usage(layout(s).room_stream_key("big"))
    await client.aclose()
    assert isinstance(outcomes[-1], Backpressure)
    assert 64 * 1024 <= used < 64 * 1024 + 2 * 4096 + 4096
    assert len(outcomes) < 25  # refused after about 16 entries, not 40


def test_windows_written_before_expiries_existed_get_the_expiry_they_would_have_had(settings):
    from scripts import resume_windows

    s = dataclasses.replace(settings, resume_window_ttl_seconds=3600)
    r = plain_client(s.redis_url)
    window_key = layout(s).window_key
    now_ms = int(r.time()[0]) * 1000
    r.xadd(window_key("long-quiet"), {"f": "{}"}, id=f"{now_ms - 7200 * 1000}-0")
    r.xadd(window_key("recent"), {"f": "{}"}, id=f"{now_ms - 600 * 1000}-0")
    r.xadd(window_key("has-one"), {"f": "{}"}, id=f"{now_ms}-0")
    r.pexpire(window_key("has-one"), 5_000)
    assert resume_windows.expire_windows(s) == 2
    assert resume_windows.main(["expire"], s) == 0  # again: nothing changes
    quiet_ttl = r.pttl(window_key("long-quiet"))
    recent_ttl, kept_ttl = r.pttl(window_key("recent")), r.pttl(window_key("has-one"))
    r.close()
    assert quiet_ttl in (-2, 0, 1)  # quiet for 2 h with a 1 h lifetime: gone within 1 ms
    assert 2_990_000 < recent_ttl <= 3_000_000  # 50 minutes of its hour left
    assert 0 < kept_ttl <= 5_000  # an expiry a send set is left alone
