"""Keepalive pings for every connection of a replica, from one task.

Each connection is pinged once per interval and closed (1011) when its
previous ping is still unanswered one interval later. The pings go out a
slice at a time, spread over the interval, never all at once: pinging 1,000
connections in one go held the event loop for tens of milliseconds every
interval, which every broadcast in flight waited for (the fan-out's worst
latency spikes; docs/benchmarks.md). A connection is checked at about the
point of the round where it was pinged, so each gets about one interval to
answer, and never less than half of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from fanout.protocol import CLOSE_NO_PONG

if TYPE_CHECKING:
    from websockets.asyncio.server import Server

Pings = weakref.WeakKeyDictionary  # ServerConnection -> (pong, when the ping went out)

SLICE = 50  # connections pinged back to back; ~1-2 ms of the loop here


async def keepalive(server: Server, interval: float, send_buffer_limit: int) -> None:
    """Run until cancelled."""
    loop = asyncio.get_running_loop()
    # connection -> (its pong, when the ping went out), in the order they were pinged
    waiting: Pings = weakref.WeakKeyDictionary()
    closing: set[asyncio.Task] = set()
    while True:
        # Last round's connections in the same order, then the new ones; weakly
        # held, so that one that closes during the round is freed at once.
        order = [weakref.ref(c) for c in waiting if c.protocol.state is State.OPEN]
        order += [weakref.ref(c) for c in server.connections if c not in waiting]
        slices = [order[i : i + SLICE] for i in range(0, len(order), SLICE)] or [[]]
        del order
        pinged: Pings = weakref.WeakKeyDictionary()
        connection = None
        for part in slices:
            now = loop.time()
            for ref in part:
                connection = ref()
                if connection is None:
                    continue
                pong, sent_at = waiting.get(connection, (None, 0.0))
                if pong is not None and not pong.done():
                    if now - sent_at < interval / 2:
                        pinged[connection] = (pong, sent_at)  # give it the rest of its time
                        continue
                    task = asyncio.create_task(
                        connection.close(CLOSE_NO_PONG, "keepalive ping timeout")
                    )
                    closing.add(task)
                    task.add_done_callback(closing.discard)
                    continue
                # Skip the closing and the slow (a ping would wait for their buffer).
                if (
                    connection.protocol.state is State.OPEN
                    and connection.transport.get_write_buffer_size() <= send_buffer_limit
                ):
                    with contextlib.suppress(ConnectionClosed, RuntimeError):
                        pinged[connection] = (await connection.ping(), now)
            connection = None  # nor is the last one of the slice kept over the sleep
            await asyncio.sleep(interval / len(slices))
        waiting = pinged
