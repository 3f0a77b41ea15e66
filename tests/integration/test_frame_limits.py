"""What one connection can make a replica (and a room) do is bounded: typing
coalesced, every inbound frame limited, floods closed, join replays within
the send buffer, attachment checks after the budget and on their own pool."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading

from websockets.exceptions import ConnectionClosed

from aurora.backends import async_redis_client, layout
from aurora.errors import ValidationError
from aurora.sending import Sender
from fanout.upload_check import AttachmentCheck
from tests.integration.test_fanout_v1 import join, v1
from tests.support.fanout import receive_json, replica, send_json


async def frames_for(ws, seconds: float) -> list[dict]:
    """Every frame `ws` receives in the next `seconds` (or until it closes)."""
    got = []
    with contextlib.suppress(TimeoutError, ConnectionClosed):
        async with asyncio.timeout(seconds):
            while True:
                got.append(await receive_json(ws, seconds))
    return got


async def test_typing_is_coalesced_to_one_frame_a_second_and_the_final_state_arrives(settings):
    """40 alternating typing frames (a `false` used to reset the throttle, so
    every one was relayed) reach the room as one frame per second they took
    to send, and one more: the final state."""
    loop = asyncio.get_running_loop()
    async with replica(settings) as (url, _):
        alice, bob = await v1(url, settings, "alice"), await v1(url, settings, "bob")
        await join(alice, "dev")
        await join(bob, "dev")
        started = loop.time()
        for i in range(40):
            await send_json(alice, {"type": "typing", "room": "dev", "typing": i % 2 == 0})
        took = loop.time() - started  # well under a second, unless the machine is loaded
        seen = [f["typing"] for f in await frames_for(bob, 1.6) if f["type"] == "typing"]
        await alice.close()
        await bob.close()
    assert seen[0] is True and seen[-1] is False
    assert len(seen) <= 2 + int(took)


async def typing_in_dev(url: str, settings):
    """Alice and Bob in `dev`, Bob having seen Alice start typing."""
    alice, bob = await v1(url, settings, "alice"), await v1(url, settings, "bob")
    await join(alice, "dev")
    await join(bob, "dev")
    await send_json(alice, {"type": "typing", "room": "dev", "typing": True})
    assert (await receive_json(bob))["typing"] is True
    return alice, bob


async def test_leaving_a_room_while_typing_tells_the_room_it_stopped(settings):
    async with replica(settings) as (url, _):
        alice, bob = await typing_in_dev(url, settings)
        await send_json(alice, {"type": "leave", "room": "dev"})
        after = await receive_json(bob)
        await alice.close()
        await bob.close()
    assert after["type"] == "typing" and after["user"] == "alice" and after["typing"] is False


async def test_a_stopping_replica_closes_redis_only_after_a_closing_connection_s_last_typing(
    settings,
):
    """A connection closed by a stopping replica while others see it typing
    sends a last `false`; the replica closes its Redis client after that
    send, not before (a command after the close opens the client again,
    and nothing closes it)."""
    order: list[str] = []
    async with replica(settings) as (url, server):
        alice, bob = await typing_in_dev(url, settings)
        sender, aclose = server.replica.sender, server.redis.aclose
        publish = sender.publish_ephemeral

        async def slow_publish(room: str, frame: str) -> None:
            await asyncio.sleep(1.0)  # longer than the rest of the stop takes
            await publish(room, frame)
            order.append("last typing sent")

        async def recorded_aclose() -> None:
            order.append("redis closed")
            await aclose()

        sender.publish_ephemeral = slow_publish
        server.redis.aclose = recorded_aclose
    await alice.close()  # closed by the replica already: this only waits for it
    await bob.close()
    assert order[:2] == ["last typing sent", "redis closed"]


async def test_frames_over_the_connection_limit_get_rate_limited_and_the_connection_stays(
    settings,
):
    s = dataclasses.replace(settings, inbound_frames_per_second=1.0, inbound_frame_burst=10)
    async with replica(s) as (url, _):
        alice = await v1(url, s, "alice")
        for _ in range(20):
            await send_json(alice, {"type": "ping"})
        answers = [await receive_json(alice) for _ in range(20)]
        await asyncio.sleep(1.1)
        await send_json(alice, {"type": "ping"})
        later = await receive_json(alice)
        await alice.close()
    kinds = [a["type"] for a in answers]
    pongs = kinds.count("pong")  # the burst, and a refill if sending took over a second
    assert pongs in (10, 11, 12) and kinds.count("rate_limited") == 20 - pongs
    assert all(0 < a["retry_after_ms"] <= 1000 for a in answers if a["type"] == "rate_limited")
    assert later == {"type": "pong"}


async def test_a_sustained_flood_of_frames_is_closed_with_1008(settings):
    s = dataclasses.replace(settings, flood_frames_per_second=50, flood_seconds=2)
    async with replica(s) as (url, server):
        alice = await v1(url, s, "alice")
        drained = asyncio.create_task(frames_for(alice, 6))  # keep reading the answers
        with contextlib.suppress(ConnectionClosed):
            for _ in range(60):  # 200 frames a second for 3 s at most
                for _ in range(20):
                    await send_json(alice, {"type": "ping"})
                await asyncio.sleep(0.1)
        await drained
        code = alice.close_code
    assert code == 1008
    assert server.metrics.flood_disconnects._value.get() == 1


async def test_a_join_replay_is_bounded_by_the_send_buffer(settings):
    """40 messages of ~1 KB missed, a 16 KiB send-buffer limit: the replay is
    the newest that fit in half of it, with `recovered: false` so the client
    pages the rest from history."""
    s = dataclasses.replace(settings, max_send_buffer_bytes=16 * 1024, user_message_burst=100)
    s = dataclasses.replace(s, rate_limit_messages=100)
    client = async_redis_client(s.redis_url)
    sender = Sender(client, s, layout(s))
    ids = [
        (await sender.send(room="busy", user_id="u9", username="carol", text=f"{i:04d}" * 250)).id
        for i in range(40)
    ]
    await client.aclose()
    async with replica(s) as (url, _):
        alice = await v1(url, s, "alice")
        joined = await join(alice, "busy", since=ids[0])
        replay = [await receive_json(alice) for _ in range(joined["missed"])]
        await send_json(alice, {"type": "ping"})
        assert await receive_json(alice) == {"type": "pong"}  # nothing else was queued
        await alice.close()
    assert joined["recovered"] is False and 0 < joined["missed"] <= 8
    assert [m["id"] for m in replay] == ids[-joined["missed"] :]


async def test_an_over_budget_send_is_refused_before_its_attachments_are_checked(settings):
    s = dataclasses.replace(settings, user_message_burst=1, user_messages_per_second=0.01)
    async with replica(s) as (url, _):
        alice = await v1(url, s, "alice")
        await join(alice, "dev")
        await send_json(alice, {"type": "message", "room": "dev", "text": "hi", "client_id": "a"})
        first = [await receive_json(alice) for _ in range(2)]
        bogus = [{"url": "https://elsewhere.example/x", "file_type": "image/png", "size": 1,
                  "filename": "x.png"}]  # fmt: skip
        frame = {"type": "message", "room": "dev", "text": "", "attachments": bogus,
                 "client_id": "b"}  # fmt: skip
        await send_json(alice, frame)
        refused = await receive_json(alice)
        await alice.close()
    assert {f["type"] for f in first} == {"message", "ack"}
    assert refused["type"] == "rate_limited" and refused["client_id"] == "b"


async def test_attachment_checks_have_a_pool_of_their_own(settings):
    """With the loop's default executor fully taken, a check still runs."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    busy = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    check = AttachmentCheck(settings)
    try:
        # A malformed item is refused inside the check's thread, before any S3 call.
        async with asyncio.timeout(5):
            try:
                await check.verify([{"url": "nope"}], "id-alice")
            except ValidationError as refused:
                outcome = refused.code
    finally:
        release.set()
        await asyncio.gather(*busy)
        check.close()
    assert outcome == "invalid_attachment"


async def test_typing_over_the_frame_limit_is_dropped_without_an_answer(settings):
    """Typing is never answered, so a refusal must not be either: clients pair
    answers with the frames they sent, in order."""
    s = dataclasses.replace(settings, inbound_frames_per_second=1.0, inbound_frame_burst=3)
    async with replica(s) as (url, _):
        alice = await v1(url, s, "alice")
        await join(alice, "dev")
        for i in range(8):  # two within the burst, six over it
            await send_json(alice, {"type": "typing", "room": "dev", "typing": i % 2 == 0})
        await asyncio.sleep(1.1)  # a token for the ping
        await send_json(alice, {"type": "ping"})
        got = []
        while not got or got[-1]["type"] != "pong":
            got.append(await receive_json(alice))
        await alice.close()
    assert {f["type"] for f in got} == {"typing", "pong"}  # relays, then the ping's answer


async def test_attachment_checks_beyond_their_queue_are_refused_at_once(settings, dummy_aws):
    """An S3 that accepts connections and never answers: one thread's worth
    of checks in flight and its queue full, the next check is `unavailable`
    without waiting, and the others end once S3 goes away."""
    import socket

    from aurora import attachments
    from aurora.errors import UnavailableError
    from fanout.upload_check import QUEUED_PER_THREAD

    silent = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        silent.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(silent.accept()[0])

    holder = threading.Thread(target=hold)
    holder.start()
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    s = dataclasses.replace(settings, s3_endpoint_url=endpoint, attachment_check_threads=1)
    attachments.s3_client.cache_clear()
    check = AttachmentCheck(s)
    key = "attachments/id-alice/k/cat.png"
    item = {"url": attachments.object_url(s, key, attachments.s3_client(endpoint)),
            "file_type": "image/png", "size": 1, "filename": "cat.png"}  # fmt: skip
    waiting = [
        asyncio.create_task(check.verify([item], "id-alice")) for _ in range(1 + QUEUED_PER_THREAD)
    ]
    await asyncio.sleep(0.2)
    try:
        async with asyncio.timeout(1):
            try:
                await check.verify([item], "id-alice")
            except UnavailableError as refused:
                outcome = refused.message
    finally:
        stop.set()
        holder.join()
        silent.close()
        for connection in held:
            connection.close()
        ended = await asyncio.gather(*waiting, return_exceptions=True)
        check.close()
        attachments.s3_client.cache_clear()
    assert outcome == "Attachment checks are busy, retry"
    assert all(isinstance(e, UnavailableError) for e in ended)
