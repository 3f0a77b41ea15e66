"""Drain throughput by batch size: queue N messages in the stream, time one
run of the drain until the stream is empty, check the exact count stored.

    .venv/bin/python bench/drain_throughput.py [--messages 20000] [--batch-sizes 1,50,500,1000]
        [--without-history-index]

Starts its own redis-server and SecantusDB (standalone) in a temporary folder
on ephemeral loopback ports, and stops them by pid.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import redis
from pymongo import MongoClient

from aurora import messages
from aurora.drain import Drain
from aurora.keyspace import STREAM_KEY
from aurora.stream import StreamEntry
from local.servers import start_mongo, start_redis


def queue(r: redis.Redis, n: int) -> None:
    for start in range(0, n, 10_000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 10_000)):
            entry = StreamEntry("0-0", "general", f"u{i % 50}", f"user{i % 50}", f"message {i}")
            pipe.xadd(STREAM_KEY, entry.fields())
        pipe.execute()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch-sizes", default="1,50,500,1000")
    parser.add_argument("--max-batch-1-messages", type=int, default=3_000)
    parser.add_argument(
        "--without-history-index",
        action="store_true",
        help="skip the room_time index (shows what maintaining it costs the store)",
    )
    args = parser.parse_args()

    print(f"python {platform.python_version()}, {platform.machine()}, {platform.node()}")
    with tempfile.TemporaryDirectory() as tmp:
        redis_proc = start_redis(Path(tmp) / "redis")
        mongo_proc = start_mongo(Path(tmp) / "mongo")
        try:
            r = redis.Redis.from_url(redis_proc.url, decode_responses=True)
            mongo = MongoClient(mongo_proc.url)
            print(f"{'batch':>6} {'messages':>9} {'seconds':>8} {'msg/s':>9}")
            for size in (int(s) for s in args.batch_sizes.split(",")):
                # Batch 1 is a round trip per message: fewer of them, same rate.
                n = min(args.messages, args.max_batch_1_messages) if size == 1 else args.messages
                db = mongo[f"bench_{size}"]
                if not args.without_history_index:
                    messages.ensure_indexes(db)
                r.flushdb()
                queue(r, n)
                run = Drain(r, db, consumer="bench", batch_size=size, block_ms=10)
                started = time.perf_counter()
                summary = run.run(lambda: True, exit_when_idle=True)
                seconds = time.perf_counter() - started
                assert summary.inserted == n, summary
                assert db[messages.COLLECTION].count_documents({}) == n
                print(f"{size:>6} {n:>9} {seconds:>8.2f} {n / seconds:>9.0f}")
                mongo.drop_database(db.name)
        finally:
            mongo_proc.stop()
            redis_proc.stop()


if __name__ == "__main__":
    main()
