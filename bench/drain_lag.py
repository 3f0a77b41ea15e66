"""Persistence lag under steady chat, with the deployed schedule's shape.

A producer appends `--rate` messages a second to the stream for `--duration`
seconds. Like EventBridge + Lambda, a drain run starts every `--schedule`
seconds (runs may overlap), and each keeps draining until fewer than
`--margin` seconds of its `--timeout` are left. A message's lag is the time
from its stream id (Redis's clock when it was accepted) to the moment its
batch was acknowledged, i.e. known to be in MongoDB.

    # rate(1 minute), timeout 70 s, 75 s of chat: covers one hand-over
    .venv/bin/python bench/drain_lag.py [--partitions 4]

Starts its own redis-server and SecantusDB in a temporary folder on
ephemeral loopback ports, and stops them by pid. Lambda cold starts are not
simulated (they add ~1 s to the first batch of a run that lands on a new
container).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import redis
from pymongo import MongoClient

from aurora import messages
from aurora.drain import Drain, Entry, partitions_of
from aurora.keyspace import Layout
from aurora.stream import StreamEntry, parse_id
from local.servers import scratch_stores


class TimedDrain(Drain):
    """The real drain, noting each entry's lag once its batch is acknowledged."""

    lags: list[float]

    def _store_many(self, work: list[tuple[object, list[Entry], dict]]) -> None:
        super()._store_many(work)
        now_ms = time.time() * 1000
        for _, batch, _ in work:
            self.lags.extend(now_ms - parse_id(entry_id)[0] for entry_id, _ in batch)


def produce(r: redis.Redis, rate: int, duration: float, sent: list[str], layout: Layout) -> None:
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < duration:
        due = int(elapsed * rate) + per_tick
        pipe = r.pipeline(transaction=False)
        for i in range(n, due):
            room = f"room-{i % 100}"  # over every partition
            entry = StreamEntry("0-0", room, "u1", "alice", f"m{i}")
            pipe.xadd(layout.room_stream_key(room), entry.fields())
        sent.extend(pipe.execute())
        n = due
        time.sleep(max(0.0, start + n / rate - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000, help="messages per second")
    parser.add_argument("--duration", type=float, default=75.0, help="seconds of chat")
    parser.add_argument("--schedule", type=float, default=60.0, help="seconds between runs")
    parser.add_argument("--timeout", type=float, default=70.0, help="function timeout, s")
    parser.add_argument("--margin", type=float, default=5.0, help="safety margin, s")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--block-ms", type=int, default=1000)
    parser.add_argument("--exit-when-idle", action="store_true")
    parser.add_argument("--partitions", type=int, default=1, help="stream partitions")
    args = parser.parse_args()
    layout = Layout(partitions=args.partitions)

    with scratch_stores() as (redis_proc, mongo_proc):
        r = redis.Redis.from_url(redis_proc.url, decode_responses=True)
        db = MongoClient(mongo_proc.url)["bench_lag"]
        messages.ensure_indexes(db)
        lags: list[float] = []
        sent: list[str] = []
        runs: list[threading.Thread] = []
        stopping = threading.Event()
        producer = threading.Thread(
            target=produce, args=(r, args.rate, args.duration, sent, layout)
        )

        def one_run(n: int) -> None:
            deadline = time.monotonic() + args.timeout
            run = TimedDrain(
                r, db, consumer=f"run-{n}", batch_size=args.batch_size,
                block_ms=args.block_ms, partitions=partitions_of(layout),
            )  # fmt: skip
            run.lags = lags
            run.run(
                lambda: deadline - time.monotonic() > args.margin and not stopping.is_set(),
                exit_when_idle=args.exit_when_idle,
            )

        started = time.monotonic()
        producer.start()
        n = 0
        while producer.is_alive():
            runs.append(threading.Thread(target=one_run, args=(n,)))
            runs[-1].start()
            n += 1
            next_at = started + n * args.schedule
            while producer.is_alive() and time.monotonic() < next_at:
                time.sleep(0.05)
        producer.join()
        # What is left after the chat stops: one more run takes it.
        runs.append(threading.Thread(target=one_run, args=(n,)))
        runs[-1].start()
        while len(lags) < len(sent) and time.monotonic() - started < args.duration + 120:
            time.sleep(0.1)
        stopping.set()
        for run in runs:
            run.join()
        stored = db[messages.COLLECTION].count_documents({})
        q = statistics.quantiles(lags, n=100)
        print(
            f"rate {args.rate}/s for {args.duration:.0f} s, schedule {args.schedule:.0f} s, "
            f"timeout {args.timeout:.0f} s, margin {args.margin:.0f} s, "
            f"batch {args.batch_size}, exit_when_idle={args.exit_when_idle}, "
            f"partitions {args.partitions}"
        )
        print(f"runs started: {n + 1}; sent {len(sent)}; stored {stored}")
        print(f"lag ms: p50 {q[49]:.0f}  p90 {q[89]:.0f}  p99 {q[98]:.0f}  max {max(lags):.0f}")
        assert stored == len(sent), "every message stored once"


if __name__ == "__main__":
    main()
