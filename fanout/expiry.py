"""Closes each connection when its token expires, from one timer per replica.

A timer per connection costs ~750 bytes on uvloop (its timer handle, a libuv
timer and the callback's closure), 8 % of an idle connection
(docs/benchmarks.md). Here a connection costs one heap entry, a three-item
list. The heap holds `[deadline, order, session]`; the one timer is set for
the earliest deadline. A session that goes (closed, or moved by a re-auth)
only empties its entry, so its memory goes at once; the empty entries are
dropped when they come to the top, or all together once they outnumber the
live ones, so a wave of connections that closes leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

from fanout.protocol import CLOSE_AUTH_FAILED

_COMPACT_FROM = 64  # empty entries tolerated before the heap is rebuilt


class Expiring(Protocol):
    async def close(self, code: int, reason: str) -> None: ...


Entry = list  # [deadline (epoch seconds), order, session or None]


class TokenExpiry:
    def __init__(self) -> None:
        self._heap: list[Entry] = []
        self._order = itertools.count()  # two equal deadlines never compare sessions
        self._empty = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._closing: set[asyncio.Task] = set()

    def __len__(self) -> int:
        """Sessions waiting for their expiry."""
        return len(self._heap) - self._empty

    def add(self, session: Expiring, deadline: float) -> Entry:
        """Close `session` with 4001 at `deadline` (epoch seconds); the entry
        returned is what `cancel` takes."""
        entry = [deadline, next(self._order), session]
        heapq.heappush(self._heap, entry)
        if deadline < self._timer_at:
            self._arm(deadline)
        return entry

    def cancel(self, entry: Entry) -> None:
        if entry[2] is None:
            return
        entry[2] = None
        self._empty += 1
        if self._empty >= _COMPACT_FROM and self._empty * 2 > len(self._heap):
            self._heap = [e for e in self._heap if e[2] is not None]
            heapq.heapify(self._heap)
            self._empty = 0

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(deadline - time.time(), 0), self._fire)
        self._timer_at = deadline

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        heap, now = self._heap, time.time()
        while heap and (heap[0][2] is None or heap[0][0] <= now):
            entry = heapq.heappop(heap)
            session, entry[2] = entry[2], None  # a later `cancel` finds it done
            if session is None:
                self._empty -= 1
                continue
            task = asyncio.ensure_future(session.close(CLOSE_AUTH_FAILED, "token expired"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        if heap:
            self._arm(heap[0][0])

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_at = None, float("inf")
