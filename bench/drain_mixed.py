"""Drain rate, message-only against a mix of messages and changes: queue N
entries, time one run of the drain until the stream is empty, check what
was stored.

    .venv/bin/python bench/drain_mixed.py [--entries 20000] [--batch-size 500] [--lag 0,2000]
                                          [--repeat 1]

The mix, per 10 entries: 5 messages, 1 edit, 2 reactions and 2 cursor
moves (read, delivered) of messages `lag` messages back: 0, the messages
just before them, as a busy room makes them (the drain folds those into the
documents it inserts); 2,000, messages of earlier batches (each change is
then a conditional update of a stored document). With `--repeat N` the runs
take turns N times and the table gives each one's median (a loaded machine
slows some runs by 2-3x: turns and medians keep that out of the ratios).
The last columns count CPU time instead of the wall clock: the drain's, the
database server's and Redis's, which a quiet machine spends one after the
other (the drain waits for each reply), and which a loaded one does not
stretch by the time it spends waiting for a core.
Starts its own redis-server and SecantusDB (standalone) in a temporary
folder on ephemeral loopback ports, and stops them by pid.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

import redis
from pymongo import MongoClient, monitoring

from aurora import message_state, messages, receipts
from aurora.drain import Drain
from aurora.keyspace import STREAM_KEY
from aurora.stream import StreamEntry, change_fields
from local.servers import scratch_stores

ROOM = "general"


def queue_messages(r: redis.Redis, n: int) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        user = i % 50
        entry = StreamEntry("0-0", ROOM, f"u{user}", f"user{user}", f"message {i}", n=i + 1)
        pipe.xadd(STREAM_KEY, entry.fields())
    pipe.execute()


def queue_mixed(r: redis.Redis, n: int, lag: int) -> int:
    """`n` entries, half of them changes of messages `lag` messages back (or
    the first ones); the number of messages queued."""
    ids: list[str] = []
    count = 0
    for start in range(0, n, 10):
        pipe = r.pipeline(transaction=False)
        for _ in range(5):
            count += 1
            user = count % 50
            pipe.xadd(STREAM_KEY, StreamEntry("0-0", ROOM, f"u{user}", f"user{user}",
                                              f"message {count}", n=count).fields())  # fmt: skip
        ids += pipe.execute()
        back = max(len(ids) - lag, 5)
        recent = ids[back - 5 : back]
        pipe = r.pipeline(transaction=False)
        author = (back - 4) % 50  # the author of the first of the five
        pipe.xadd(STREAM_KEY, change_fields("edit", ROOM, f"u{author}", "x", recent[0],
                                            text="edited"))  # fmt: skip
        for k, emoji in enumerate(("👍", "🎉")):
            pipe.xadd(STREAM_KEY, change_fields("react", ROOM, f"u{k}", "x", recent[k + 1],
                                                emoji=emoji))  # fmt: skip
        for kind in ("read", "delivered"):
            fields = change_fields(kind, ROOM, f"u{start % 50}", "x", recent[-1])
            pipe.xadd(STREAM_KEY, fields | {"n": str(count)})
        pipe.execute()
    return count


class ByCommand(monitoring.CommandListener):
    """Where a run's database time goes: seconds and statements (documents
    inserted, updates; 0 for reads) per command and collection, as the
    client sees them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.statements: dict[str, int] = defaultdict(int)
        self._started: dict[int, tuple[str, int]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        name = f"{event.command_name} {target}" if isinstance(target, str) else event.command_name
        count = len(event.command.get("updates") or event.command.get("documents") or ())
        self._started[event.request_id] = (name, count)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        name, count = self._started.pop(event.request_id, ("?", 0))
        self.seconds[name] += event.duration_micros / 1e6
        self.statements[name] += count

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.succeeded(event)  # type: ignore[arg-type]

    def report(self) -> str:
        rows = sorted(self.seconds.items(), key=lambda item: -item[1])
        return "; ".join(
            f"{name} {seconds:.2f} s ({self.statements[name]})"
            for name, seconds in rows
            if seconds >= 0.01
        )


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) of this process and of `pids`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def timed(r: redis.Redis, db, batch_size: int, pids: list[int]) -> tuple[float, float, int]:
    """Wall-clock and CPU seconds of one run of the drain, and what it drained."""
    run = Drain(r, db, consumer="bench", batch_size=batch_size, block_ms=10)
    started, cpu_before = time.perf_counter(), cpu_seconds(pids)
    summary = run.run(lambda: True, exit_when_idle=True)
    return time.perf_counter() - started, cpu_seconds(pids) - cpu_before, summary.drained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--lag", default="0,2000", help="how far back the changes reach")
    parser.add_argument("--repeat", type=int, default=1, help="turns of every run (medians)")
    parser.add_argument("--by-command", action="store_true", help="database time per command")
    args = parser.parse_args()
    n = args.entries - args.entries % 10

    print(f"python {platform.python_version()}, {platform.machine()}, {platform.node()}")
    with scratch_stores() as (redis_proc, mongo_proc):
        r = redis.Redis.from_url(redis_proc.url, decode_responses=True)
        commands = ByCommand()
        mongo = MongoClient(mongo_proc.url, event_listeners=[commands])
        runs = ["message-only"] + [f"mixed lag={lag}" for lag in args.lag.split(",")]
        rates: dict[str, list[float]] = {name: [] for name in runs}
        cpu_rates: dict[str, list[float]] = {name: [] for name in runs}
        servers = [redis_proc.pid, mongo_proc.pid]
        for turn in range(args.repeat):
            for name in runs:
                db = mongo[f"bench_{turn}_{runs.index(name)}"]
                messages.ensure_indexes(db)
                message_state.ensure_indexes(db)
                r.flushdb()
                if name == "message-only":
                    queue_messages(r, n)
                    stored = n
                else:
                    stored = queue_mixed(r, n, int(name.split("=")[1]))
                commands.reset()
                seconds, cpu, drained = timed(r, db, args.batch_size, servers)
                if args.by_command:
                    print(f"{name}, {seconds:.2f} s: {commands.report()}")
                assert drained == n, (drained, n)
                assert db[messages.COLLECTION].count_documents({}) == stored
                if name != "message-only":
                    assert db[messages.COLLECTION].count_documents({"edit_id": {"$exists": True}})
                    assert db[receipts.CURSORS].count_documents({}) > 0
                rates[name].append(n / seconds)
                cpu_rates[name].append(n / cpu)
                mongo.drop_database(db.name)
        header = f"{'run':>15} {'entries':>8} {'entries/s (each turn)':>30} {'median':>8}"
        print(f"{header} {'ratio':>6} {'per CPU s':>9} {'ratio':>6}")
        base = statistics.median(rates["message-only"])
        cpu_base = statistics.median(cpu_rates["message-only"])
        for name in runs:
            each = " ".join(f"{rate:.0f}" for rate in rates[name])
            median, cpu = statistics.median(rates[name]), statistics.median(cpu_rates[name])
            print(
                f"{name:>15} {n:>8} {each:>30} {median:>8.0f} {median / base:>6.2f}"
                f" {cpu:>9.0f} {cpu / cpu_base:>6.2f}"
            )


if __name__ == "__main__":
    main()
