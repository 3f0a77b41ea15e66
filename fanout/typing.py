"""Typing indicators, coalesced per connection and room.

Every `typing` frame a client sends would otherwise reach every member of the
room: one client could make a big room receive a frame per frame it sends.
So at most one `typing` frame per connection and room goes out every
`TYPING_INTERVAL_MS`, carrying the latest state; a change that arrives
within the interval is held and sent when it ends, so the final state always
arrives (a `false` is never lost, and a held `true` still goes out, since
clients expire a `true` after 6 s). A connection that leaves a room, or
closes, while others see it typing sends a last `false`.

A user's connections each have their own relay (at most
`MAX_CONNECTIONS_PER_USER` of them): per user and room, at most that many
frames per interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("aurora.fanout")

Publish = Callable[[str, bool], Awaitable[None]]  # (room, typing)


@dataclass(slots=True)
class _Room:
    sent_at: float  # loop time of the last frame sent
    sent: bool  # the state others last saw
    held: bool | None = None  # a newer state, sent when the interval ends
    timer: asyncio.TimerHandle | None = None


class TypingRelay:
    """One connection's typing states; made on its first `typing` frame."""

    __slots__ = ("_interval", "_publish", "_rooms", "_tasks")

    def __init__(self, publish: Publish, interval_ms: int, tasks: set[asyncio.Task]) -> None:
        self._publish = publish
        self._interval = interval_ms / 1000
        self._rooms: dict[str, _Room] = {}
        # Held and last sends under way, in a set the replica shares: they may
        # outlive the connection, and the replica waits for them when it stops.
        self._tasks = tasks

    async def update(self, room: str, typing: bool) -> None:
        """The client says it is (not) typing in `room`: relay it now if the
        interval has passed, else hold it (the latest wins) until it has."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        state = self._rooms.get(room)
        if state is None:
            self._rooms[room] = _Room(sent_at=now, sent=typing)
            await self._publish(room, typing)
            return
        if state.timer is None and now - state.sent_at >= self._interval:
            if typing or state.sent:  # a repeated `false` tells nobody anything
                state.sent_at, state.sent = now, typing
                await self._publish(room, typing)
            return
        state.held = typing
        if state.timer is None:
            delay = state.sent_at + self._interval - now
            state.timer = loop.call_later(delay, self._send_held, room)

    def forget(self, room: str) -> None:
        """The connection left `room`: drop its record, and if others still
        see it typing there, tell them it stopped."""
        state = self._rooms.pop(room, None)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
        if state.sent or state.held:
            self._spawn(room, False)

    def close(self) -> None:
        """The connection is closing: forget every room."""
        for room in list(self._rooms):
            self.forget(room)

    def _send_held(self, room: str) -> None:
        state = self._rooms.get(room)
        if state is None:
            return
        state.timer = None
        held, state.held = state.held, None
        if held is None or (not held and not state.sent):
            return
        state.sent_at, state.sent = asyncio.get_running_loop().time(), held
        self._spawn(room, held)

    def _spawn(self, room: str, typing: bool) -> None:
        task = asyncio.ensure_future(self._publish_quietly(room, typing))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_quietly(self, room: str, typing: bool) -> None:
        # Nobody waits for an answer: a failure (Redis unreachable) is logged.
        try:
            await self._publish(room, typing)
        except Exception as exc:
            log.warning("typing frame not published", extra={"room": room, "error": repr(exc)})
