"""The local connection registry and the one Redis subscriber of this replica.

A replica subscribes only to the channels of rooms its clients are in, and
writes each published frame, encoded once, to every local member.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from websockets.asyncio.server import broadcast
from websockets.protocol import State

from aurora.delivery import ROOM_CHANNEL_PREFIX, room_channel

if TYPE_CHECKING:
    import redis.asyncio
    from websockets.asyncio.server import ServerConnection

log = logging.getLogger("aurora.fanout")

CONTROL_CHANNEL = "aurora:fanout:control"
SLOW_CLIENT_CLOSE = 4008


class Hub:
    def __init__(self, client: redis.asyncio.Redis, *, max_buffer_bytes: int = 1 << 20) -> None:
        self._redis = client
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._rooms: dict[str, set[ServerConnection]] = defaultdict(set)
        self._max_buffer = max_buffer_bytes
        self.slow_closed = 0
        self._closing: set[asyncio.Task] = set()

    async def start(self) -> None:
        # Subscribing to a control channel opens the connection before any room.
        await self._pubsub.subscribe(CONTROL_CHANNEL)

    async def close(self) -> None:
        await self._pubsub.aclose()

    async def join(self, room: str, connection: ServerConnection) -> None:
        members = self._rooms[room]
        members.add(connection)
        if len(members) == 1:
            await self._pubsub.subscribe(room_channel(room))

    async def leave_all(self, connection: ServerConnection) -> None:
        for room in [r for r, members in self._rooms.items() if connection in members]:
            members = self._rooms[room]
            members.discard(connection)
            if not members:
                del self._rooms[room]
                await self._pubsub.unsubscribe(room_channel(room))

    @property
    def connection_count(self) -> int:
        return len({c for members in self._rooms.values() for c in members})

    async def run(self) -> None:
        """Forward published frames to local members until cancelled; survive
        Redis restarts (redis-py resubscribes on reconnect)."""
        import redis

        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.warning("redis subscriber lost its connection (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            if message and message["type"] == "message":
                room = message["channel"].removeprefix(ROOM_CHANNEL_PREFIX)
                self.deliver(room, message["data"])

    def deliver(self, room: str, frame: str) -> None:
        members = self._rooms.get(room)
        if not members:
            return
        ready = []
        for connection in members:
            transport = connection.transport
            if transport is not None and transport.get_write_buffer_size() > self._max_buffer:
                if connection.state is State.OPEN:
                    self.slow_closed += 1
                    task = asyncio.ensure_future(connection.close(SLOW_CLIENT_CLOSE, "too slow"))
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)
                continue
            ready.append(connection)
        broadcast(ready, frame)
