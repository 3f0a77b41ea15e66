"""The drain moves the stream into MongoDB exactly once, whatever happens."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from aurora import messages
from aurora.backends import database
from aurora.drain import Drain, ensure_group, partitions_of
from aurora.keyspace import SINGLE, STREAM_KEY, Layout
from aurora.settings import Settings
from aurora.stream import GROUP, StreamEntry, change_fields
from tests.conftest import on_single_and_cluster, plain_client
from tests.support import ROOT


def always() -> bool:
    return True


@pytest.fixture
def db(settings: Settings):
    return database(settings)


def queue(
    r, n: int, room: str = "general", text: str = "m{i}", layout: Layout = SINGLE
) -> list[str]:
    ids: list[str] = []
    for start in range(0, n, 10_000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 10_000)):
            entry = StreamEntry(
                id="0-0", room=room, user_id="u1", username="alice", text=text.format(i=i)
            )
            pipe.xadd(layout.room_stream_key(room), entry.fields())
        ids += pipe.execute()
    return ids


def drain(r, db, name: str = "run", layout: Layout = SINGLE, **kwargs) -> Drain:
    kwargs.setdefault("block_ms", 10)
    return Drain(r, db, consumer=name, partitions=partitions_of(layout), **kwargs)


def until_idle(run: Drain):
    return run.run(always, exit_when_idle=True)


def stored(db) -> list[str]:
    return [d["id"] for d in db[messages.COLLECTION].find({}, {"id": 1})]


def dead_letters(r, layout: Layout = SINGLE, room: str = "general") -> list[dict[str, str]]:
    key = layout.dead_letter_key(layout.partition_of(room))
    return [fields for _, fields in r.xrange(key)]


@on_single_and_cluster
def test_every_queued_message_is_stored_once_and_acknowledged(r, db, redis_layout):
    ids = queue(r, 1200, layout=redis_layout)
    summary = until_idle(drain(r, db, batch_size=500, layout=redis_layout))
    assert sorted(stored(db)) == sorted(ids)
    assert (summary.inserted, summary.batches) == (1200, 3)
    assert r.xpending(redis_layout.room_stream_key("general"), GROUP)["pending"] == 0


def test_the_stored_document_is_the_message_model(r, db):
    (entry_id,) = queue(r, 1)
    until_idle(drain(r, db))
    doc = db[messages.COLLECTION].find_one({"id": entry_id})
    ms, seq = (int(part) for part in entry_id.split("-"))
    assert doc["ms"] == ms and doc["seq"] == seq
    assert int(doc["created_at"].timestamp() * 1000) == ms
    assert (doc["room"], doc["user_id"], doc["username"], doc["text"]) == (
        "general",
        "u1",
        "alice",
        "m0",
    )
    assert (doc["status"], doc["attachments"], doc["edited_at"], doc["deleted"]) == (
        "sent",
        [],
        None,
        False,
    )


def test_a_repeated_run_stores_nothing_twice(r, db):
    queue(r, 50)
    until_idle(drain(r, db))
    second = until_idle(drain(r, db))
    assert second.drained == 0
    assert len(stored(db)) == 50


def test_a_round_is_acknowledged_only_after_a_journaled_write_that_follows_all_its_writes(
    r, settings
):
    """The round's writes go without waiting for the journal; the last write
    before the ack is journaled (syncing the journal up to it syncs them all),
    and nothing is acknowledged before it."""
    from pymongo import MongoClient, monitoring

    writes: list[tuple[str, bool, int]] = []  # (command, journaled, entries still pending)

    class Writes(monitoring.CommandListener):
        def started(self, event):
            if event.command_name in ("insert", "update", "delete"):
                journaled = bool((event.command.get("writeConcern") or {}).get("j"))
                pending = r.xpending(STREAM_KEY, GROUP)["pending"]
                writes.append((event.command_name, journaled, pending))

        def succeeded(self, event): ...

        def failed(self, event): ...

    ids = queue(r, 20)
    r.xadd(STREAM_KEY, change_fields("edit", "general", "u1", "alice", ids[0], text="new"))
    mongo = MongoClient(settings.mongo_url, event_listeners=[Writes()])
    try:
        until_idle(drain(r, mongo[settings.mongo_db], batch_size=100))
    finally:
        mongo.close()
    assert [journaled for _, journaled, _ in writes] == [False] * (len(writes) - 1) + [True]
    assert len(writes) >= 3  # the insert, the edit, the journaled write
    assert all(pending == 21 for _, _, pending in writes)
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0


# A drain in a process of its own that SIGKILLs itself the moment it is about
# to send the transaction that acknowledges its first batch: after the
# insert, before the ack. No hook in the drain: the test patches the client.
KILLED_BETWEEN_INSERT_AND_ACK = """
import os, signal, sys
import redis
from aurora.backends import database
from aurora.drain import Drain
from aurora.settings import Settings

import redis.cluster
from aurora.backends import layout, redis_client
from aurora.drain import partitions_of

die = lambda self, *a, **k: os.kill(os.getpid(), signal.SIGKILL)
redis.client.Pipeline.execute = redis.cluster.ClusterPipeline.execute = die
settings = Settings(env="local", redis_url=sys.argv[1], mongo_url=sys.argv[2], mongo_db=sys.argv[3])
parts = partitions_of(layout(settings))
Drain(redis_client(settings.redis_url), database(settings), consumer="killed", block_ms=10,
      partitions=parts).run(lambda: True)
"""


@on_single_and_cluster
def test_a_run_killed_between_insert_and_ack_loses_and_duplicates_nothing(
    r, db, settings, redis_layout
):
    stream = redis_layout.room_stream_key("general")
    ids = queue(r, 30, layout=redis_layout)
    child = [sys.executable, "-c", KILLED_BETWEEN_INSERT_AND_ACK]
    done = subprocess.run(
        [*child, settings.redis_url, settings.mongo_url, settings.mongo_db],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert len(stored(db)) == 30  # inserted...
    assert r.xpending(stream, GROUP)["pending"] == 30  # ...never acknowledged

    summary = until_idle(drain(r, db, name="next", claim_idle_ms=0, layout=redis_layout))
    assert (summary.reclaimed, summary.duplicates, summary.inserted) == (30, 30, 0)
    assert sorted(stored(db)) == sorted(ids)
    assert r.xpending(stream, GROUP)["pending"] == 0
    assert dead_letters(r, redis_layout) == []


def test_pending_entries_of_a_live_run_are_not_reclaimed_before_the_visibility_timeout(r, db):
    ensure_group(r)
    queue(r, 5)
    r.xreadgroup(GROUP, "busy", {STREAM_KEY: ">"}, count=5)
    summary = until_idle(drain(r, db, name="other", claim_idle_ms=60_000))
    assert summary.reclaimed == 0
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 5


def test_a_run_fails_without_taking_entries_while_mongodb_is_unreachable(r, settings):
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from local.servers import free_port

    ensure_group(r)
    queue(r, 20)
    down = MongoClient(f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=300)
    with pytest.raises(PyMongoError):
        until_idle(drain(r, down["aurora"], name="outage"))
    down.close()
    # Nothing was delivered, so an outage never counts towards the poison limit.
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0
    assert r.xlen(STREAM_KEY) == 20
    summary = until_idle(drain(r, database(settings), name="recovered"))
    assert summary.inserted == 20


@on_single_and_cluster
def test_a_malformed_entry_is_dead_lettered_and_does_not_block_the_rest(r, db, redis_layout):
    stream = redis_layout.room_stream_key("general")
    good = queue(r, 3, layout=redis_layout)
    bad = r.xadd(stream, {"v": "1", "room": "general"})  # no user, no text
    alien = r.xadd(stream, {"v": "99", "payload": "{not json"})
    summary = until_idle(drain(r, db, layout=redis_layout))
    assert sorted(stored(db)) == sorted(good)
    assert summary.dead_lettered == 2
    letters = dead_letters(r, redis_layout)
    assert [(d["source_id"], d["code"]) for d in letters] == [
        (bad, "missing_fields"),
        (alien, "bad_version"),
    ]
    assert "Missing fields" in letters[0]["reason"]
    assert r.xpending(stream, GROUP)["pending"] == 0


@on_single_and_cluster
def test_an_entry_delivered_too_many_times_is_dead_lettered(r, db, redis_layout):
    stream = redis_layout.room_stream_key("general")
    ensure_group(r, redis_layout.stream_keys())
    (poison,) = queue(r, 1, layout=redis_layout)
    # Three runs took it and died: each delivery counts.
    r.xreadgroup(GROUP, "died-1", {stream: ">"})
    r.xclaim(stream, GROUP, "died-2", 0, [poison])
    r.xclaim(stream, GROUP, "died-3", 0, [poison])
    fresh = queue(r, 2, layout=redis_layout)
    summary = until_idle(drain(r, db, claim_idle_ms=0, max_deliveries=3, layout=redis_layout))
    assert (summary.reclaimed, summary.dead_lettered, summary.inserted) == (1, 1, 2)
    assert sorted(stored(db)) == sorted(fresh)
    ((letter),) = dead_letters(r, redis_layout)
    assert (letter["source_id"], letter["code"]) == (poison, "too_many_deliveries")
    assert r.xpending(stream, GROUP)["pending"] == 0


def test_a_document_the_database_rejects_is_dead_lettered_and_the_rest_stored(r, db, redis_layout):
    # A unique index on another field: its duplicate is a rejection, not "already stored".
    db[messages.COLLECTION].create_index("text", unique=True, name="text_unique")
    first, second = queue(r, 2, text="same", layout=redis_layout)
    (other,) = queue(r, 1, text="other", layout=redis_layout)
    summary = until_idle(drain(r, db, layout=redis_layout))
    assert sorted(stored(db)) == sorted([first, other])
    assert (summary.inserted, summary.duplicates, summary.dead_lettered) == (2, 0, 1)
    ((letter),) = dead_letters(r, redis_layout)
    assert (letter["source_id"], letter["code"]) == (second, "rejected_by_database")


def test_concurrent_runs_share_the_work_without_duplicates(r, db):
    ids = queue(r, 6000)
    summaries = []
    runs = [drain(r, db, name=f"run-{i}", batch_size=100) for i in range(3)]
    threads = [threading.Thread(target=lambda d=d: summaries.append(until_idle(d))) for d in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(stored(db)) == sorted(ids)
    assert sum(s.inserted for s in summaries) == 6000
    assert sum(s.duplicates for s in summaries) == 0  # each entry went to one run only
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0


def test_the_drain_trims_acknowledged_entries_but_never_unacknowledged_ones(r, db):
    ensure_group(r)
    queue(r, 10)
    # Another consumer takes 4 entries and has not acknowledged them yet.
    held = [i for i, _ in r.xreadgroup(GROUP, "slow", {STREAM_KEY: ">"}, count=4)[0][1]]
    queue(r, 5)
    summary = until_idle(drain(r, db, name="trimmer"))
    remaining = [i for i, _ in r.xrange(STREAM_KEY)]
    assert remaining[: len(held)] == held  # the oldest unacknowledged entry is kept
    assert len(stored(db)) == 11
    assert summary.backlog == 4  # still owed an ack: reported, for an alarm


def test_a_fully_drained_stream_is_trimmed_empty(r, db):
    queue(r, 25)
    summary = until_idle(drain(r, db))
    assert summary.trimmed == 25
    assert r.xlen(STREAM_KEY) == 0


def test_the_stream_stays_bounded_while_a_long_run_drains_steady_chat(r, db):
    """Trimming happens during a run, not only at its end: what the group has
    acknowledged leaves the stream within a trim interval or so. (What is
    not acknowledged yet stays, by design: how fast the drain catches up
    depends on the machine, and is not what this checks.)"""
    ensure_group(r)
    deadline = time.monotonic() + 3.0
    produced: list[str] = []
    acknowledged_kept: list[int] = []

    def chat() -> None:
        while time.monotonic() < deadline - 0.5:
            produced.extend(queue(r, 50))  # ~2,500 msg/s
            pipe = r.pipeline(transaction=True)
            pipe.xlen(STREAM_KEY)
            pipe.xinfo_groups(STREAM_KEY)
            length, groups = pipe.execute()
            (group,) = [g for g in groups if g["name"] == GROUP]
            acknowledged_kept.append(length - group["pending"] - (group["lag"] or 0))
            time.sleep(0.02)

    producer = threading.Thread(target=chat)
    producer.start()
    run = drain(r, db, block_ms=100, trim_interval_ms=100)
    summary = run.run(lambda: time.monotonic() < deadline)
    producer.join()
    until_idle(drain(r, db, name="tail"))
    assert sorted(stored(db)) == sorted(produced)
    assert summary.trimmed >= len(produced) // 2
    # Never more than a fraction of what went through.
    assert max(acknowledged_kept) < len(produced) / 4


def test_twenty_thousand_queued_messages_are_all_stored_exactly_once(r, db):
    """A backlog of many batches (bench/drain_throughput.py goes further)."""
    queue(r, 20_000)
    summary = until_idle(drain(r, db, batch_size=1000))
    assert summary.inserted == 20_000
    assert db[messages.COLLECTION].count_documents({}) == 20_000
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0
    assert r.xlen(STREAM_KEY) == 0


def test_an_entry_deleted_while_pending_is_reported_as_a_dead_letter(r, db):
    ensure_group(r)
    (gone,) = queue(r, 1)
    r.xreadgroup(GROUP, "crashed", {STREAM_KEY: ">"})
    r.xdel(STREAM_KEY, gone)  # someone deleted it before it was stored
    summary = until_idle(drain(r, db, claim_idle_ms=0))
    assert summary.dead_lettered == 1
    ((letter),) = dead_letters(r)
    assert (letter["source_id"], letter["code"]) == (gone, "empty_entry")
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0


def test_a_long_run_takes_over_what_an_overlapping_run_left_when_it_died(r, db):
    ensure_group(r)
    ids = queue(r, 3)
    # Another run took them and died without acknowledging them, just now:
    # too recently for the long run's first reclaim.
    r.xreadgroup(GROUP, "died", {STREAM_KEY: ">"}, count=3)
    deadline = time.monotonic() + 2.0
    run = drain(r, db, name="long", block_ms=50, claim_idle_ms=700)
    summary = run.run(lambda: time.monotonic() < deadline)
    assert summary.reclaimed == 3  # once they had been idle for 0.7 s
    assert sorted(stored(db)) == sorted(ids)
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0


@pytest.fixture(scope="module")
def failpoint_mongo():
    """A MongoDB-protocol server with test commands (`configureFailPoint`) on."""
    from secantus import SecantusDBServer

    with SecantusDBServer(host="127.0.0.1", port=0, storage_path=":memory:") as server:
        # Quick rediscovery after a "shutting down" error (pymongo waits for a heartbeat).
        sep = "&" if "?" in server.uri else "?"
        yield f"{server.uri}{sep}retryWrites=false&heartbeatFrequencyMS=500"


@pytest.mark.parametrize(
    "failure",
    [
        {"errorCode": 91},  # ShutdownInProgress: the insert never happened
        # The documents were written but not acknowledged as asked.
        {"writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}},
    ],
    ids=["command-error", "write-concern-error"],
)
def test_a_transient_database_error_leaves_the_batch_pending_not_dead_lettered(
    r, failpoint_mongo, failure, request
):
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client = MongoClient(failpoint_mongo)
    db = client[f"t_{request.node.callspec.id.replace('-', '_')}"]
    ensure_group(r)
    ids = queue(r, 5)
    client.admin.command(
        {
            "configureFailPoint": "failCommand",
            "mode": {"times": 1},
            "data": {"failCommands": ["insert"], **failure},
        }
    )
    with pytest.raises(PyMongoError):
        until_idle(drain(r, db, name="unlucky"))
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 5
    summary = until_idle(drain(r, db, name="next", claim_idle_ms=0))
    assert summary.reclaimed == 5 and summary.dead_lettered == 0
    assert sorted(stored(db)) == sorted(ids)
    assert r.xpending(STREAM_KEY, GROUP)["pending"] == 0
    client.close()


def test_an_entry_that_is_not_utf8_is_dead_lettered_and_the_batch_goes_on(
    db, settings, capsys, redis_layout
):
    """Raw bytes from some other producer must not make the batch unreadable."""
    from aurora.backends import redis_client

    raw = plain_client(settings.redis_url, decode=False)
    before = queue(redis_client(settings.redis_url), 2, layout=redis_layout)
    bad = raw.xadd(
        redis_layout.room_stream_key("general"),
        {
            b"v": b"1",
            b"room": b"general",
            b"user_id": b"u1",
            b"username": b"\xff\xfe",
            b"text": b"x",
        },
    ).decode()
    after = queue(redis_client(settings.redis_url), 2, layout=redis_layout)
    summary = until_idle(drain(redis_client(settings.redis_url), db, layout=redis_layout))
    assert sorted(stored(db)) == sorted(before + after)
    assert summary.dead_lettered == 1
    (letter,) = deadletters_of(settings)
    assert (letter.source_id, letter.code) == (bad, "invalid_encoding")
    assert letter.fields["username"] == "\udcff\udcfe"  # the raw bytes, kept
    from scripts import deadletters as deadletters_cli

    assert deadletters_cli.main(["show", letter.id], settings) == 0  # printable, escaped
    assert "\\udcff" in capsys.readouterr().out
    raw.close()


def test_an_entry_too_large_to_store_is_dead_lettered(r, db, redis_layout):
    ensure_group(r, redis_layout.stream_keys())
    huge = StreamEntry("0-0", "general", "u1", "alice", "x" * (16 * 1024 * 1024)).fields()
    too_large = r.xadd(redis_layout.room_stream_key("general"), huge)
    fine = queue(r, 3, layout=redis_layout)
    summary = until_idle(drain(r, db, layout=redis_layout))
    assert sorted(stored(db)) == sorted(fine)
    assert summary.dead_lettered == 1
    ((letter),) = [(f["source_id"], f["code"]) for f in dead_letters(r, redis_layout)]
    assert letter == (too_large, "too_large")


def deadletters_of(settings: Settings):
    """The dead letters of room `general`'s partition."""
    from aurora import deadletters
    from aurora.backends import layout, redis_client

    lay = layout(settings)
    key = lay.dead_letter_key(lay.partition_of("general"))
    return deadletters.list_letters(redis_client(settings.redis_url), key=key)


def test_the_drain_records_each_rooms_newest_message_and_a_redelivery_changes_nothing(r, db):
    from aurora import rooms

    older = queue(r, 3, room="a") + queue(r, 2, room="b")
    newest_a = queue(r, 1, room="a")[0]
    until_idle(drain(r, db))
    expected = {
        "a": (newest_a, int(newest_a.split("-")[0])),
        "b": (older[-1], int(older[-1].split("-")[0])),
    }
    recorded = {
        x["room"]: (x["last_id"], x["last_ts"]) for x in rooms.recent(db, 10, max_time_ms=1000)
    }
    assert recorded == expected
    # A crashed run's batch, stored again (duplicates) and older than what is
    # recorded, leaves each room's newest message in place.
    docs = list(db[messages.COLLECTION].find({"id": {"$in": older}}))
    rooms.record_activity(db, docs)
    rooms.record_activity(db, docs)
    again = {
        x["room"]: (x["last_id"], x["last_ts"]) for x in rooms.recent(db, 10, max_time_ms=1000)
    }
    assert again == expected
    assert db[rooms.COLLECTION].count_documents({}) == 2


def test_a_batch_a_crashed_run_stored_but_never_acknowledged_still_records_its_room(r, db):
    """The crashed run inserted the documents and died before recording the
    room and acknowledging: the redelivered batch is all duplicates, and the
    room is recorded anyway."""
    from aurora import rooms

    ids = queue(r, 4, room="late")
    crashed = [messages.document(StreamEntry.from_redis(i, f)) for i, f in r.xrange(STREAM_KEY)]
    db[messages.COLLECTION].insert_many(crashed)
    summary = until_idle(drain(r, db))
    assert (summary.inserted, summary.duplicates) == (0, 4)
    (room,) = rooms.recent(db, 10, max_time_ms=1000)
    assert (room["room"], room["last_id"]) == ("late", ids[-1])
