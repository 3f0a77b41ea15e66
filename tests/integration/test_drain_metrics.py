"""The drain reports what the template's alarms watch: backlog, lag, dead letters."""

from __future__ import annotations

import json

import pytest
import redis

from aurora import drain_metrics
from aurora.drain import ensure_group
from aurora.settings import Settings
from aurora.stream import STREAM_KEY
from local.runtime import LocalFunction
from local.template import functions
from tests.conftest import ROOT


def entry(i: int) -> dict[str, str]:
    return {"v": "1", "room": "general", "user_id": "u1", "username": "alice", "text": f"m{i}"}


def test_the_backlog_counts_unread_and_unacknowledged_entries(settings: Settings):
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    ensure_group(client)
    for i in range(5):
        client.xadd(STREAM_KEY, entry(i))
    assert drain_metrics.stream_backlog(client) == 5
    client.xreadgroup("ingest", "c1", {STREAM_KEY: ">"}, count=2)  # delivered, not acked
    assert drain_metrics.stream_backlog(client) == 5


@pytest.fixture
def ingest(app_env: Settings, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "aurorachat")
    monkeypatch.setenv("DRAIN_BLOCK_MS", "10")
    (spec,) = [f for f in functions(ROOT / "template.yaml") if f.name == "IngestFunction"]
    fn = LocalFunction(spec)
    yield fn
    fn.close()


def test_a_drain_run_emits_the_metrics_the_alarms_watch(ingest, app_env, capsys):
    client = redis.Redis.from_url(app_env.redis_url, decode_responses=True)
    for i in range(3):
        client.xadd(STREAM_KEY, entry(i))
    client.xadd(STREAM_KEY, {"v": "99", "room": "general"})  # unreadable: dead-lettered
    summary = ingest.invoke(json.loads((ROOT / "events/drain.schedule.json").read_text()))
    assert summary["inserted"] == 3

    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    (emf,) = [b for b in blobs if "StreamBacklog" in b]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "AuroraChatTest"
    assert ["service"] in directive["Dimensions"] and emf["service"] == "aurorachat"
    # EMF writes each value as a list of the values added in the run.
    assert emf["StreamBacklog"] == [0.0]
    assert emf["DeadLettered"] == [1.0]
    assert emf["Drained"] == [4.0]
    assert emf["DrainMaxLagMs"][0] >= 0
