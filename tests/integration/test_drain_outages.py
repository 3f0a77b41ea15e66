"""Outages of the real servers: MongoDB stopped while chat goes on, Redis
killed and restarted from its append-only file. Nothing is lost, nothing is
stored twice."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import pytest
import redis

from aurora import messages
from aurora.backends import database, layout
from aurora.drain import Drain, ensure_group
from aurora.keyspace import STREAM_KEY
from aurora.settings import Settings, get_settings
from aurora.stream import GROUP, StreamEntry
from local.runtime import LocalFunction
from local.servers import ManagedProcess, free_port, start_mongo, start_redis
from local.template import functions
from tests.conftest import plain_client
from tests.support import ROOT
from tests.support.draining import drain_until_idle

SCHEDULED = json.loads((ROOT / "events" / "drain.schedule.json").read_text())
OUTAGE_SECONDS = 6  # two runs of the compressed schedule; bench/faults.py holds one for 30 s


def entry(i: int) -> dict[str, str]:
    return StreamEntry("0-0", "general", "u1", "alice", f"message {i}").fields()


@pytest.fixture
def own_mongo(tmp_path: Path):
    """A MongoDB-protocol server this test may stop and restart."""
    port = free_port()
    server = start_mongo(tmp_path / "mongo", port)
    holder = {"server": server, "port": port, "dir": tmp_path / "mongo"}
    yield holder
    holder["server"].stop()


def test_mongodb_down_for_two_scheduled_runs_while_chat_continues_loses_nothing(
    app_env: Settings, own_mongo, monkeypatch
):
    """The scheduled function fails while MongoDB is down; afterwards every
    message lands exactly once."""
    server: ManagedProcess = own_mongo["server"]
    monkeypatch.setenv("MONGO_URL", server.url)
    # A compressed schedule: 3 s runs (8 s timeout - 5 s margin), pending
    # entries reclaimable after 0.5 s.
    monkeypatch.setenv("DRAIN_CLAIM_IDLE_MS", "500")
    monkeypatch.setenv("DRAIN_BLOCK_MS", "200")
    get_settings.cache_clear()
    (fn,) = [f for f in functions(ROOT / "template.yaml") if f.name == "IngestFunction"]
    ingest = LocalFunction(dataclasses.replace(fn, timeout=8))

    r, lay = plain_client(app_env.redis_url), layout(app_env)
    stream = lay.room_stream_key("general")
    sent: list[str] = []
    failures: list[BaseException] = []
    chatting = threading.Event()
    chatting.set()
    scheduling = threading.Event()
    scheduling.set()

    def chat() -> None:  # ~50 messages a second, outage or not
        i = 0
        while chatting.is_set():
            sent.append(r.xadd(stream, entry(i)))
            i += 1
            time.sleep(0.02)

    def schedule() -> None:  # like EventBridge: a run, then the next
        while scheduling.is_set():
            try:
                ingest.invoke(SCHEDULED)
            except Exception as exc:  # the run reports failure; the next one retries
                failures.append(exc)
            time.sleep(0.2)

    threads = [threading.Thread(target=chat), threading.Thread(target=schedule)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        down_at = time.monotonic()
        server.stop()  # SIGTERM, by pid
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        own_mongo["server"] = server = start_mongo(own_mongo["dir"], own_mongo["port"])
        time.sleep(1.5)
    finally:
        chatting.clear()
        scheduling.clear()
        for thread in threads:
            thread.join(30)
    ingest.close()

    drain_until_idle(get_settings(), consumer="final", claim_idle_ms=0, block_ms=10)
    stored = [d["id"] for d in database(get_settings())[messages.COLLECTION].find({}, {"id": 1})]
    assert failures, "the runs during the outage should have failed"
    assert len(sent) > 20 * OUTAGE_SECONDS  # chat went on during the outage
    assert sorted(stored) == sorted(sent)  # all of it, once
    assert r.xpending(stream, GROUP)["pending"] == 0
    assert r.xlen(lay.dead_letter_key(lay.partition_of("general"))) == 0  # an outage is not poison
    r.close()


def test_a_redis_killed_after_its_fsync_comes_back_with_stream_group_and_pending(
    tmp_path: Path, settings: Settings
):
    port = free_port()
    server = start_redis(tmp_path / "redis", port)
    try:
        r = redis.Redis.from_url(server.url, decode_responses=True)
        ensure_group(r)
        ids = [r.xadd(STREAM_KEY, entry(i)) for i in range(10)]
        r.xreadgroup(GROUP, "crashed-run", {STREAM_KEY: ">"}, count=4)  # taken, never acked
        r.close()
        time.sleep(1.5)  # appendfsync everysec: older than a second is on disk
        server.process.kill()  # SIGKILL: no shutdown save, only the AOF
        server.process.wait(10)

        server = start_redis(tmp_path / "redis", port)
        r = redis.Redis.from_url(server.url, decode_responses=True)
        assert [i for i, _ in r.xrange(STREAM_KEY)] == ids
        assert r.xpending(STREAM_KEY, GROUP)["pending"] == 4
        summary = Drain(r, database(settings), consumer="after", claim_idle_ms=0, block_ms=10).run(
            lambda: True, exit_when_idle=True
        )
        assert (summary.reclaimed, summary.inserted) == (4, 10)
        r.close()
    finally:
        server.stop()
