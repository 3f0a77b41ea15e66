"""The ingest function, invoked as Lambda invokes it on its schedule."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time

import pytest

from aurora import messages
from aurora.backends import database, layout
from aurora.settings import Settings
from aurora.stream import StreamEntry
from local.runtime import LocalFunction
from local.template import functions
from tests.conftest import plain_client
from tests.support import ROOT

SCHEDULED = json.loads((ROOT / "events" / "drain.schedule.json").read_text())


def ingest_function(timeout: int | None = None) -> LocalFunction:
    (fn,) = [f for f in functions(ROOT / "template.yaml") if f.name == "IngestFunction"]
    return LocalFunction(fn if timeout is None else dataclasses.replace(fn, timeout=timeout))


def queue(settings: Settings, n: int) -> list[str]:
    client = plain_client(settings.redis_url)
    stream = layout(settings).room_stream_key("general")
    entry = StreamEntry(id="0-0", room="general", user_id="u1", username="alice", text="hi")
    ids = [client.xadd(stream, entry.fields()) for _ in range(n)]
    client.close()
    return ids


def test_the_template_runs_the_drain_every_minute_with_a_timeout_just_above_it():
    (fn,) = [f for f in functions(ROOT / "template.yaml") if f.name == "IngestFunction"]
    assert fn.schedules == ("rate(1 minute)",)
    assert 60 < fn.timeout <= 90


INVOKE_ONCE = """
import json, sys
from pathlib import Path
from local.runtime import LocalFunction
from local.template import functions
(fn,) = [f for f in functions(Path("template.yaml")) if f.name == "IngestFunction"]
ingest = LocalFunction(fn)
print(json.dumps({"summary": ingest.invoke(json.loads(sys.argv[1]))}), flush=True)
ingest.close()
"""


def test_a_run_returns_its_summary_logs_with_the_request_id_and_publishes_emf_metrics(
    app_env: Settings, monkeypatch
):
    """What CloudWatch would get on stdout: JSON logs and one EMF document."""
    monkeypatch.setenv("DRAIN_EXIT_WHEN_IDLE", "true")
    queue(app_env, 12)
    # A process of its own, like a Lambda container: its stdout is all ours.
    done = subprocess.run(
        [sys.executable, "-c", INVOKE_ONCE, json.dumps(SCHEDULED)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line[:1] == "{"]
    (summary,) = [line["summary"] for line in lines if "summary" in line]
    assert summary["inserted"] == 12 and summary["drained"] == 12
    assert database(app_env)[messages.COLLECTION].count_documents({}) == 12

    # The run's totals; with partitions (a cluster) one record per partition follows.
    (emf,) = [line for line in lines if "_aws" in line and "partition" not in line]
    (directive,) = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "AuroraChatTest"
    names = {m["Name"] for m in directive["Metrics"]}
    assert {"Drained", "Inserted", "Duplicates", "Reclaimed", "DeadLettered"} <= names
    assert {"BatchSize", "PersistenceLag", "Backlog"} <= names
    assert (emf["Drained"], emf["Inserted"], emf["DeadLettered"]) == ([12], [12], [0])
    (log,) = [line for line in lines if line.get("message") == "drain finished"]
    assert log["function_request_id"] and log["inserted"] == 12


def test_by_default_a_run_keeps_draining_and_picks_up_messages_sent_while_it_runs(
    app_env: Settings,
):
    """One run per schedule tick keeps persistence lag around a second."""
    fn = ingest_function(timeout=8)  # with the 5 s safety margin: a ~3 s run
    runner = threading.Thread(target=lambda: results.append(fn.invoke(SCHEDULED)))
    results: list[dict] = []
    runner.start()
    try:
        time.sleep(1.0)
        late = queue(app_env, 5)  # sent while the run is already going
        started = time.monotonic()
        db = database(app_env)
        while db[messages.COLLECTION].count_documents({}) < 5 and time.monotonic() - started < 5:
            time.sleep(0.05)
        stored_after = time.monotonic() - started
    finally:  # the run ends with the test, whatever happens: never in the next one
        runner.join(15)
        fn.close()
    assert sorted(d["id"] for d in db[messages.COLLECTION].find()) == sorted(late)
    assert stored_after < 2.0  # not waiting for the next run
    assert results[0]["inserted"] == 5


def test_a_stopping_emulator_ends_a_long_drain_run_promptly(app_env: Settings):
    fn = ingest_function()  # 70 s timeout: left alone, the run would last ~65 s
    runner = threading.Thread(target=lambda: fn.invoke(SCHEDULED))
    runner.start()
    time.sleep(0.5)
    started = time.monotonic()
    fn.close()
    runner.join(10)
    assert not runner.is_alive()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_bad_drain_settings_are_refused(value: str):
    from aurora.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        Settings.from_env({"AURORA_ENV": "local", "DRAIN_MAX_DELIVERIES": value})
