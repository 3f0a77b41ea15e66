"""`GET /api/rooms` with unread counts: a user in R rooms with U unread
messages each; the time of the first page (the listing query, then the
unread counts), as the messages function computes it.

    .venv/bin/python bench/unread_rooms.py [--rooms 200] [--unread 10000,1000000] [--repeat 20]

The rooms, memberships and Redis counters are written as the send, change
and read scripts leave them (counters, 1 % of the unread deleted, 5 % the
user's own, capped at 5,000 each), not by sending every message: the
counts cost the same whatever wrote them. Starts its own redis-server and
SecantusDB (standalone) in a temporary folder on ephemeral loopback ports,
and stops them by pid.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import redis
from pymongo import MongoClient

from aurora import receipts, room_admin, room_list, rooms
from aurora.keyspace import (
    SINGLE,
    cursors_key,
    deleted_numbers_key,
    own_messages_key,
    room_counter_key,
)
from aurora.tokens import Claims
from local.servers import scratch_stores

USER = "u-bench"


def populate(r: redis.Redis, db, n_rooms: int, unread: int) -> None:
    r.flushdb()
    db[rooms.COLLECTION].drop()
    db[rooms.MEMBERSHIPS].drop()
    rooms.ensure_indexes(db)
    read_at = 100  # the user has read the first 100 messages of each room
    newest = read_at + unread
    db[rooms.COLLECTION].insert_many(
        {"_id": f"room-{i}", "visibility": "public", "title": "", "owner": "u-owner",
         "deleted": False, "last": rooms.activity_key(1_700_000_000_000 + i, 0), "last_ts": 0}
        for i in range(n_rooms)
    )  # fmt: skip
    db[rooms.MEMBERSHIPS].insert_many(
        {"room": f"room-{i}", "user_id": USER, "username": "bench", "role": "member",
         "activity": room_list.activity_of(rooms.activity_key(1_700_000_000_000 + i, 0),
                                           f"room-{i}")}
        for i in range(n_rooms)
    )  # fmt: skip
    deleted = min(unread // 100, 5000)
    own = min(unread // 20, 5000)
    for i in range(n_rooms):
        room = f"room-{i}"
        pipe = r.pipeline(transaction=False)
        pipe.set(room_counter_key(room), newest)
        pipe.hset(cursors_key(room, receipts.READ), USER, f"{read_at} 1700000000000-{read_at}")
        step = max(unread // max(deleted, 1), 1)
        pipe.zadd(deleted_numbers_key(room), {str(read_at + 1 + k * step): read_at + 1 + k * step
                                               for k in range(deleted)})  # fmt: skip
        pipe.zadd(own_messages_key(room, USER), {str(newest - k): newest - k for k in range(own)})
        pipe.execute()


def first_page(r: redis.Redis, db, limit: int) -> tuple[float, float, dict]:
    """(ms for the listing, ms for the unread counts, the page)."""
    claims = Claims(USER, "bench", issued_at=0, expires_at=2**40, token_id="bench-jti")  # noqa: S106
    started = time.perf_counter()
    listed = room_admin.listing(db, claims, scope=None, cursor=None, limit=limit,
                                max_time_ms=10_000, client=r)  # fmt: skip
    between = time.perf_counter()
    page = receipts.with_unread(r, SINGLE, claims, listed)
    done = time.perf_counter()
    return (between - started) * 1000, (done - between) * 1000, page


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--unread", default="10000,1000000")
    parser.add_argument("--limit", type=int, default=100, help="page size (the API's maximum)")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    print(f"python {platform.python_version()}, {platform.machine()}, {platform.node()}")
    with scratch_stores() as (redis_proc, mongo_proc):
        r = redis.Redis.from_url(redis_proc.url, decode_responses=True)
        db = MongoClient(mongo_proc.url)["bench"]
        print(f"{'rooms':>6} {'unread':>9} {'page':>5} {'listing ms p50/p95':>19} "
              f"{'unread ms p50/p95':>18} {'total ms p50/p95':>17}")  # fmt: skip
        for unread in (int(u) for u in args.unread.split(",")):
            populate(r, db, args.rooms, unread)
            first_page(r, db, args.limit)  # places the listing's floor hint (`aurora.room_list`)
            runs = [first_page(r, db, args.limit) for _ in range(args.repeat)]
            page = runs[-1][2]["rooms"]
            deleted, own = min(unread // 100, 5000), min(unread // 20, 5000)
            assert len(page) == min(args.limit, args.rooms)
            assert all(room["unread"] == unread - deleted - own for room in page), page[0]
            listing = sorted(run[0] for run in runs)
            counts = sorted(run[1] for run in runs)
            total = sorted(run[0] + run[1] for run in runs)
            print(f"{args.rooms:>6} {unread:>9} {len(page):>5} "
                  f"{_p(listing):>19} {_p(counts):>18} {_p(total):>17}")  # fmt: skip


def _p(figures: list[float]) -> str:
    p95 = figures[min(len(figures) - 1, int(len(figures) * 0.95))]
    return f"{statistics.median(figures):.1f} / {p95:.1f}"


if __name__ == "__main__":
    main()
