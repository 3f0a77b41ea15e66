"""The replica's one expiry timer closes each session when its token expires,
never a session that went or moved, and keeps nothing of those that went."""

from __future__ import annotations

import asyncio
import time

from fanout.expiry import TokenExpiry
from fanout.protocol import CLOSE_AUTH_FAILED


class FakeSession:
    def __init__(self, order: list | None = None) -> None:
        self.closed = asyncio.Event()
        self.code: int | None = None
        self.order = order if order is not None else []

    async def close(self, code: int, reason: str) -> None:
        self.code = code
        self.order.append(self)
        self.closed.set()


async def test_sessions_close_with_4001_in_deadline_order_and_a_cancelled_one_stays_open():
    expiry = TokenExpiry()
    now = time.time()
    order: list[FakeSession] = []
    later, sooner, cancelled = FakeSession(order), FakeSession(order), FakeSession(order)
    expiry.add(later, now + 0.2)
    expiry.add(sooner, now + 0.05)  # earlier than the armed timer: it is moved
    expiry.cancel(expiry.add(cancelled, now + 0.1))
    await asyncio.wait_for(later.closed.wait(), 5)
    await asyncio.sleep(0.1)
    assert order == [sooner, later]
    assert (sooner.code, later.code, cancelled.code) == (CLOSE_AUTH_FAILED,) * 2 + (None,)
    assert len(expiry) == 0
    expiry.stop()


async def test_a_re_auth_moves_the_deadline_and_only_the_new_one_counts():
    expiry = TokenExpiry()
    session = FakeSession()
    first = expiry.add(session, time.time() + 0.05)
    expiry.cancel(first)
    expiry.add(session, time.time() + 3600)
    await asyncio.sleep(0.2)
    assert not session.closed.is_set()
    expiry.cancel(first)  # twice: still one session waiting
    assert len(expiry) == 1
    expiry.stop()


async def test_a_wave_of_sessions_that_go_leaves_no_entries_behind():
    expiry = TokenExpiry()
    far = time.time() + 3600
    stays = FakeSession()
    expiry.add(stays, far)
    entries = [expiry.add(FakeSession(), far) for _ in range(1000)]
    for entry in entries:
        expiry.cancel(entry)
    assert len(expiry) == 1
    assert len(expiry._heap) < 100  # rebuilt, not 1,001 entries kept until the deadline
    expiry.stop()
