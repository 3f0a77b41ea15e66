"""Faults of the fan-out tier, under load. Each test ends with the same
property: every message acknowledged to a sender is stored exactly once, and
every live client got it, live or by resume."""

from __future__ import annotations

import asyncio
import signal

from tests.support.chatters import Fleet, check_nothing_lost
from tests.support.faults import ROOM

SENDERS, READERS, RATE = 12, 12, 2.0  # 24 msg/s into one room read by 24 clients


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
