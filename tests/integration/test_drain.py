"""The drain moves the stream into MongoDB exactly once, whatever happens."""

from __future__ import annotations

import pytest
import redis

from aurora import messages
from aurora.backends import database
from aurora.drain import Drain, ensure_group
from aurora.settings import Settings
from aurora.stream import DEAD_LETTER_KEY, GROUP, STREAM_KEY, StreamEntry


def always() -> bool:
    return True


@pytest.fixture
def r(settings: Settings):
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def db(settings: Settings):
    return database(settings)


def queue(r, n: int, room: str = "general") -> list[str]:
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        entry = StreamEntry(id="0-0", room=room, user_id="u1", username="alice", text=f"m{i}")
        pipe.xadd(STREAM_KEY, entry.fields())
    return pipe.execute()


def drain(r, db, name: str = "run", **kwargs) -> Drain:
    kwargs.setdefault("block_ms", 10)
    return Drain(r, db, consumer=name, **kwargs)


def stored(db) -> list[str]:
    return [d["_id"] for d in db[messages.COLLECTION].find({}, {"_id": 1})]


def test_every_queued_message_is_stored_once_and_acknowledged(r, db):
    ids = queue(r, 1200)
    summary = drain(r, db, batch_size=500).run(always)
    assert sorted(stored(db)) == sorted(ids)
    assert (summary.inserted, summary.batches) == (1200, 3)
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0


def test_a_repeated_run_stores_nothing_twice(r, db):
    queue(r, 50)
    drain(r, db).run(always)
    second = drain(r, db).run(always)
    assert second.drained == 0
    assert len(stored(db)) == 50


def killed(*_args):
    raise SystemExit("killed between insert and ack")


def test_a_run_killed_between_insert_and_ack_loses_and_duplicates_nothing(r, db, monkeypatch):
    ids = queue(r, 30)
    crashing = drain(r, db, name="crashed")
    monkeypatch.setattr(crashing.redis, "xack", killed)
    with pytest.raises(SystemExit):
        crashing.run(always)
    monkeypatch.undo()
    assert len(stored(db)) == 30
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 30  # still owed an ack

    summary = drain(r, db, name="next", claim_idle_ms=0).run(always)
    assert (summary.reclaimed, summary.duplicates, summary.inserted) == (30, 30, 0)
    assert sorted(stored(db)) == sorted(ids)
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0


def test_entries_stay_pending_while_mongodb_is_down_and_land_after(r, db, settings):
    from pymongo import MongoClient

    from local.servers import free_port

    ids = queue(r, 20)
    down = MongoClient(f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=300)
    with pytest.raises(Exception, match=r"refused|Timeout|timed out"):
        drain(r, down["aurora"], name="outage").run(always)
    down.close()
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 20
    drain(r, db, name="recovered", claim_idle_ms=0).run(always)
    assert sorted(stored(db)) == sorted(ids)


def test_a_poison_entry_is_dead_lettered_and_does_not_block_the_rest(r, db):
    good = queue(r, 3)
    bad = r.xadd(STREAM_KEY, {"v": "1", "room": "general"})  # no user, no text
    summary = drain(r, db).run(always)
    assert sorted(stored(db)) == sorted(good)
    assert summary.dead_lettered == 1
    ((_, letter),) = r.xrange(DEAD_LETTER_KEY)
    assert letter["source_id"] == bad and "Missing fields" in letter["reason"]
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0


def test_the_drain_trims_acknowledged_entries_but_never_unacknowledged_ones(r, db):
    ensure_group(r)
    queue(r, 10)
    # Another consumer takes 4 entries and has not acknowledged them yet.
    held = [i for i, _ in r.xreadgroup(GROUP, "slow", {STREAM_KEY: ">"}, count=4)[0][1]]
    queue(r, 5)
    drain(r, db, name="trimmer").run(always)
    remaining = [i for i, _ in r.xrange(STREAM_KEY)]
    assert remaining[: len(held)] == held  # the oldest unacknowledged entry is kept
    assert len(stored(db)) == 11


def test_a_fully_drained_stream_is_trimmed_empty(r, db):
    queue(r, 25)
    summary = drain(r, db).run(always)
    assert summary.trimmed == 25
    assert r.xlen(STREAM_KEY) == 0
