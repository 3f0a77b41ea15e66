"""Faults of the storage path under load: the drain killed mid-batch, MongoDB
down, Redis stopped and killed. Each test ends with the same property: every
message acknowledged to a sender is stored exactly once, and every live client
got it, live or by resume (for Redis SIGKILL: except a bounded, measured loss)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import redis

from aurora.backends import close_database_clients
from aurora.keyspace import STREAM_KEY
from aurora.stream import GROUP, parse_id
from local.servers import free_port, start_mongo
from tests.support.chatters import Fleet, check_nothing_lost, stored_by_client_id
from tests.support.faults import ROOM, drain_process, make_stack

SENDERS, READERS, RATE = 10, 6, 2.0
# Short here; `python bench/faults.py` runs the same tests at full scale (30 s).
MONGO_OUTAGE_SECONDS = float(os.environ.get("FAULTS_MONGO_OUTAGE_SECONDS", "4"))
# Redis appends every second (appendfsync everysec): a SIGKILL may lose
# what was acknowledged since the last fsync, and a little more on a loaded machine.
FSYNC_LOSS_BOUND_MS = 2000


def fleet_for(stack, **overrides) -> Fleet:
    shape = {"senders": SENDERS, "readers": READERS, "rate": RATE, "room": ROOM} | overrides
    return Fleet.of(stack.settings, stack.urls, **shape)


async def test_the_drain_killed_mid_batch_loses_nothing_and_stores_nothing_twice(stack):
    env = stack.env | {"DRAIN_BATCH_SIZE": "20", "DRAIN_BLOCK_MS": "100",
                       "DRAIN_CLAIM_IDLE_MS": "300"}  # fmt: skip
    r = stack.redis.client()
    fleet = fleet_for(stack)
    fleet.start()
    kills_mid_batch = 0
    drain = drain_process(env, stack.data_dir / "drain.log")
    try:
        await fleet.joined()
        for _ in range(3):
            await asyncio.sleep(0.7)
            # Let a backlog build, then kill the run the moment it holds a batch.
            drain.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.5)
            drain.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not _pending(r):
                await asyncio.sleep(0.001)
            kills_mid_batch += _pending(r) > 0
            drain.kill()
            drain.wait(10)
            drain = drain_process(env, stack.data_dir / "drain.log")
        await fleet.settle()
    finally:
        await fleet.stop()
        drain.kill()
        drain.wait(10)
    stack.drain_everything()
    check_nothing_lost(fleet, stack.db(), ROOM)
    assert kills_mid_batch >= 1, "no kill landed while a batch was pending"
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0


def _pending(r) -> int:
    try:
        return r.xpending(STREAM_KEY, GROUP)["pending"]
    except redis.ResponseError:  # no group yet: the drain has not started
        return 0


async def test_mongodb_down_while_chat_goes_on_loses_nothing(tmp_path: Path, own_redis):
    """Killed (a crash, not a clean stop) and restarted on its data; the
    drain fails meanwhile and catches up after."""
    port = free_port()
    mongo = start_mongo(tmp_path / "mongo", port)
    stack = make_stack(tmp_path, own_redis, mongo.url, "faults",
                       DRAIN_BLOCK_MS="100", DRAIN_CLAIM_IDLE_MS="300")  # fmt: skip
    fleet = fleet_for(stack)
    fleet.start()
    drain = drain_process(stack.env, tmp_path / "drain.log")
    try:
        await fleet.joined()
        await asyncio.sleep(1.0)
        mongo.process.kill()
        mongo.process.wait(10)
        down_at = time.monotonic()
        await asyncio.sleep(MONGO_OUTAGE_SECONDS)
        # Down until the drain has seen it fail (a slow machine starts it late).
        log = tmp_path / "drain.log"
        for _ in range(200):
            if log.exists() and "drain run failed" in log.read_text():
                break
            await asyncio.sleep(0.1)
        mongo = start_mongo(tmp_path / "mongo", port)
        outage = time.monotonic() - down_at
        print(f"\nMongoDB down for {outage:.1f} s")
        await fleet.settle()
        await asyncio.sleep(1.0)  # the running drain catches up
    finally:
        await fleet.stop()
        drain.kill()
        drain.wait(10)
        stack.stop()
    try:
        stack.drain_everything()
        check_nothing_lost(fleet, stack.db(), ROOM)
        assert "drain run failed" in (tmp_path / "drain.log").read_text()
        assert outage >= MONGO_OUTAGE_SECONDS
    finally:
        close_database_clients()
        mongo.stop()


async def test_redis_stopped_cleanly_and_restarted_loses_nothing(stack):
    """SIGTERM: Redis writes its append-only file out and exits; sends meanwhile
    are refused (`unavailable`) and the clients send them again."""
    fleet = fleet_for(stack)
    fleet.start()
    try:
        await fleet.joined()
        await asyncio.sleep(1.0)
        stack.redis.kill(signal.SIGTERM)
        await asyncio.sleep(1.0)
        stack.redis.start()
        await asyncio.sleep(1.0)
        await fleet.settle()
    finally:
        await fleet.stop()
    stack.drain_everything()
    check_nothing_lost(fleet, stack.db(), ROOM)


async def test_redis_killed_loses_at_most_the_last_second_of_acknowledged_sends(stack):
    """SIGKILL with `appendfsync everysec`: what was acknowledged after the
    last fsync is gone. Measured, bounded, and everything else holds."""
    fleet = fleet_for(stack)
    fleet.start()
    try:
        await fleet.joined()
        await asyncio.sleep(1.5)
        killed_ms = int(time.time() * 1000)
        stack.redis.kill(signal.SIGKILL)
        await asyncio.sleep(0.5)
        stack.redis.start()
        await asyncio.sleep(1.0)
        await fleet.settle()
    finally:
        await fleet.stop()
    stack.drain_everything()
    acked = fleet.acked()
    stored = stored_by_client_id(stack.db(), ROOM)
    lost = {cid: mid for cid, mid in acked.items() if cid not in stored}
    print(f"\nRedis SIGKILL: {len(lost)} of {len(acked)} acknowledged messages lost")
    assert all(killed_ms - parse_id(mid)[0] <= FSYNC_LOSS_BOUND_MS for mid in lost.values()), (
        "lost a message acknowledged more than the fsync interval before the kill"
    )
    assert not [cid for cid, ids in stored.items() if cid and len(ids) > 1]
    # Without the lost ones, the property holds in full.
    for chatter in fleet.chatters:
        chatter.acked = {cid: mid for cid, mid in chatter.acked.items() if cid not in lost}
    check_nothing_lost(fleet, stack.db(), ROOM)
