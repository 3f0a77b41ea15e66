"""Faults of the fan-out tier, under load. Each test ends with the same
property: every message acknowledged to a sender is stored exactly once, and
every live client got it, live or by resume."""

from __future__ import annotations

import asyncio
import os
import signal

import httpx

from tests.support.chatters import Fleet, check_nothing_lost
from tests.support.faults import ROOM, make_stack

SENDERS, READERS, RATE = 12, 12, 2.0  # 24 msg/s into one room read by 24 clients
# Small enough for CI; `python bench/faults.py` runs the same tests at full scale.
MANY = int(os.environ.get("FAULTS_CONNECTIONS", "400"))  # opened at once
ADMISSIONS = int(os.environ.get("FAULTS_ADMISSIONS_PER_SECOND", "60"))  # per replica
ADMISSION_CLIENTS = int(os.environ.get("FAULTS_RESTART_CLIENTS", "200"))
SLOW_DISCONNECTS = "aurora_fanout_slow_disconnects_total"


async def test_a_replica_killed_under_load_loses_nothing(stack):
    """Its clients reconnect to the other replica and resume from their last id."""
    fleet = Fleet.of(stack.settings, stack.urls, senders=SENDERS, readers=READERS, rate=RATE,
                     room=ROOM)  # fmt: skip
    fleet.start()
    try:
        await fleet.joined()
        await asyncio.sleep(1.5)
        victim = stack.replicas[0]
        victim.kill(signal.SIGKILL)
        await asyncio.sleep(2.0)  # chat goes on over the survivor
        await fleet.settle()
    finally:
        await fleet.stop()
    stack.drain_everything()
    check_nothing_lost(fleet, stack.db(), ROOM)
    moved = [c for c in fleet.chatters if c.connections > 1]
    assert len(moved) >= len(fleet.chatters) // 3, "the killed replica's clients did not move"
    assert all(1006 in c.closes or "refused" in c.closes for c in moved)


async def test_a_client_that_stops_reading_is_cut_off_and_recovers_by_resume(
    tmp_path, own_redis, mongo_server, mongo_db_name
):
    """Closed with 4008 when its send buffer is full; nobody else waits for
    it; when it reads again it reconnects and resumes."""
    stack = make_stack(tmp_path, own_redis, mongo_server.url, mongo_db_name,
                       MAX_SEND_BUFFER_BYTES="16384",
                       SOCKET_SEND_BUFFER_BYTES="16384")  # fmt: skip
    fleet = Fleet.of(stack.settings, stack.urls, senders=10, readers=3, rate=2.5, room=ROOM,
                     padding=3900)  # fmt: skip
    slow = fleet.chatters[-1]
    slow.small_window = True
    fleet.start()
    try:
        await fleet.joined()
        slow.pause_reading()
        # ~100 KB/s for it: over its buffers (~50 KB here) within a second or so
        for _ in range(100):
            if sum(map(_slow_disconnects, stack.replicas)):
                break
            await asyncio.sleep(0.1)
        slow.resume_reading()
        await fleet.settle()
    finally:
        await fleet.stop()
        stack.stop()
    stack.drain_everything()
    check_nothing_lost(fleet, stack.db(), ROOM)
    assert slow.closes[4008] == 1 and slow.connections == 2, (slow.closes, slow.connections)
    assert all(c.connections == 1 for c in fleet.chatters[:-1]), "others were disturbed"


async def test_many_connections_opened_in_one_second_are_all_served(stack):
    fleet = Fleet.of(stack.settings, stack.urls, senders=10, readers=MANY - 10, rate=2.0,
                     room=ROOM)  # fmt: skip
    started = asyncio.get_running_loop().time()
    fleet.start()  # every connection opened at once
    try:
        await fleet.joined(timeout=30)
        opened_in = asyncio.get_running_loop().time() - started
        await asyncio.sleep(1.5)
        await fleet.settle()
    finally:
        await fleet.stop()
    stack.drain_everything()
    check_nothing_lost(fleet, stack.db(), ROOM)
    print(f"\n{MANY} connections ready and joined in {opened_in:.2f} s")
    assert all(c.connections == 1 for c in fleet.chatters), "a connection was refused"


async def test_a_replica_restarted_with_many_clients_is_not_stampeded(
    tmp_path, own_redis, mongo_server, mongo_db_name
):
    """Its clients come back with jittered backoff; the replicas admit at most
    ADMISSIONS_PER_SECOND new connections a second and answer the rest 503,
    which the clients retry."""
    stack = make_stack(tmp_path, own_redis, mongo_server.url, mongo_db_name,
                       ADMISSIONS_PER_SECOND=str(ADMISSIONS))  # fmt: skip
    fleet = Fleet.of(stack.settings, stack.urls, senders=10, readers=ADMISSION_CLIENTS - 10,
                     rate=2.0, room=ROOM)  # fmt: skip
    # Half on each replica; admitted over two seconds, as the rate allows.
    fleet.start()
    try:
        await fleet.joined(timeout=30)
        await asyncio.sleep(1.0)
        restarted = stack.replicas[0]
        restarted.kill(signal.SIGTERM)  # graceful: its clients are told 1012
        restarted.start()
        await asyncio.sleep(1.0)
        await fleet.settle()
    finally:
        await fleet.stop()
        stack.stop()
    stack.drain_everything()
    check_nothing_lost(fleet, stack.db(), ROOM)
    moved = [c for c in fleet.chatters if 1012 in c.closes]
    assert len(moved) >= ADMISSION_CLIENTS // 3
    busy = sum(c.closes[503] for c in fleet.chatters)
    assert busy > 0, "nobody was asked to come back later: admission was not bounded"
    print(f"\nrestart: {len(moved)} clients moved, {busy} upgrades answered 503")


def _slow_disconnects(replica) -> float:
    """The replica's count of clients closed with 4008, from its /metrics."""
    metrics = httpx.get(replica.url.replace("ws://", "http://") + "/metrics", timeout=5).text
    (line,) = [
        ln for ln in metrics.splitlines() if ln.startswith("aurora_fanout_slow_disconnects_total")
    ]
    return float(line.split()[-1])
