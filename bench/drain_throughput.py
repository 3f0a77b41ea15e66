"""Drain throughput by batch size: queue N messages in the stream, time one
run of the drain until the stream is empty, check the exact count stored.

    .venv/bin/python bench/drain_throughput.py [--messages 20000] [--batch-sizes 1,50,500,1000]
        [--partitions 1,4,16] [--without-history-index] [--members 0,20,10000]

--members M gives each of the 100 rooms M members (memberships and the Redis
mirror), so each batch also copies its rooms' activity into their memberships
(`aurora.room_list`: rooms of more than 200 members are not copied).

Starts its own redis-server and SecantusDB (standalone) in a temporary folder
on ephemeral loopback ports, and stops them by pid.
"""

from __future__ import annotations

import argparse
import platform
import time

import redis
from pymongo import MongoClient

from aurora import messages, rooms
from aurora.drain import Drain, partitions_of
from aurora.keyspace import Layout, room_members_key
from aurora.stream import StreamEntry
from local.servers import scratch_stores


def queue(r: redis.Redis, n: int, layout: Layout) -> None:
    for start in range(0, n, 10_000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 10_000)):
            room = f"room-{i % 100}"  # over every partition
            entry = StreamEntry("0-0", room, f"u{i % 50}", f"user{i % 50}", f"message {i}")
            pipe.xadd(layout.room_stream_key(room), entry.fields())
        pipe.execute()


def seed_members(r: redis.Redis, db, members: int) -> None:
    """M members in each of the 100 rooms, as joins and the drain leave them."""
    rooms.ensure_indexes(db)
    for i in range(100):
        room = f"room-{i}"
        if members:
            db[rooms.MEMBERSHIPS].insert_many(
                [{"room": room, "user_id": f"m{k}", "role": "member", "activity": ""}
                 for k in range(members)]
            )  # fmt: skip
            r.hset(room_members_key(room), mapping={f"m{k}": "member" for k in range(members)})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch-sizes", default="1,50,500,1000")
    parser.add_argument(
        "--partitions", default="1", help="stream partition counts to compare, e.g. 1,4,16"
    )
    parser.add_argument("--max-batch-1-messages", type=int, default=3_000)
    parser.add_argument("--members", default="0", help="members per room to compare, e.g. 0,20")
    parser.add_argument(
        "--without-history-index",
        action="store_true",
        help="skip the room_time index (shows what maintaining it costs the store)",
    )
    args = parser.parse_args()
    batch_sizes = [int(s) for s in args.batch_sizes.split(",")]

    print(f"python {platform.python_version()}, {platform.machine()}, {platform.node()}")
    with scratch_stores() as (redis_proc, mongo_proc):
        r = redis.Redis.from_url(redis_proc.url, decode_responses=True)
        mongo = MongoClient(mongo_proc.url)
        print(f"{'P':>3} {'members':>8} {'batch':>6} {'messages':>9} {'seconds':>8} {'msg/s':>9}")
        counts = [int(p) for p in args.partitions.split(",")]
        runs = [(p, m, s) for p in counts for m in (int(m) for m in args.members.split(","))
                for s in batch_sizes]  # fmt: skip
        for partitions, members, size in runs:
            layout = Layout(partitions=partitions)
            # Batch 1 is a round trip per message: fewer of them, same rate.
            n = min(args.messages, args.max_batch_1_messages) if size == 1 else args.messages
            db = mongo[f"bench_{partitions}_{size}"]
            if not args.without_history_index:
                messages.ensure_indexes(db)
            r.flushdb()
            seed_members(r, db, members)
            queue(r, n, layout)
            run = Drain(r, db, consumer="bench", batch_size=size, block_ms=10,
                        partitions=partitions_of(layout))  # fmt: skip
            started = time.perf_counter()
            summary = run.run(lambda: True, exit_when_idle=True)
            seconds = time.perf_counter() - started
            assert summary.inserted == n, summary
            assert db[messages.COLLECTION].count_documents({}) == n
            print(f"{partitions:>3} {members:>8} {size:>6} {n:>9} {seconds:>8.2f} "
                  f"{n / seconds:>9.0f}")  # fmt: skip
            mongo.drop_database(db.name)


if __name__ == "__main__":
    main()
