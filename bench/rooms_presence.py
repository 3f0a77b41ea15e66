"""Rooms and presence benchmarks: prints figures, asserts nothing (docs/benchmarks.md).

    python bench/rooms_presence.py join --online 10000 --joins 50
    python bench/rooms_presence.py listing --rooms 1,100,1000 --requests 20 [--gap-ms 60000]

join: a room with N users online (held by another replica), then a client of
one replica (`python -m fanout`, a process) joins and leaves it again and
again: the time from sending `join` to reading the presence snapshot, and
the snapshot's size in bytes (bounded: at most 50 members).

listing: one user member of N rooms (and 20 others in the same rooms) on
SecantusDB (the embedded store), then `GET /api/rooms` (first page, the
default size, unread counts included) through the messages function's real
handler: the time per request, for each N (from the user's cached list of
rooms); then the same for a user's first listing, with no cached list yet
(deleted before each: every membership is read, and the list cached); then
that read of the user's memberships alone, the engine's share of such a
request (SecantusDB reads ~20 small documents per ms here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "aurora")]

from aurora.settings import Settings  # noqa: E402
from aurora.tokens import issue_token  # noqa: E402
from local.servers import free_port, start_mongo, start_redis, wait_for_port  # noqa: E402

SECRET = "bench-secret-that-is-long-enough-for-hs256-0123456789"  # noqa: S105 - local only


def figures(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{name}: n={len(samples)} p50={statistics.median(samples):.2f} ms "
            f"p95={p95:.2f} ms p99={p99:.2f} ms max={ordered[-1]:.2f} ms")  # fmt: skip


def seed_online(redis_url: str, room: str, count: int) -> None:
    import redis

    from aurora import presence

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    scripts = presence.Scripts(client)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        keys, args = presence.hold_call(room, f"u{i:06d}", f"fan{i}", "elsewhere", 600_000)
        scripts.hold(keys=keys, args=args, client=pipe)
    pipe.execute()


async def joins(url: str, token: str, room: str, count: int) -> tuple[list[float], int]:
    from websockets.asyncio.client import connect

    took, size = [], 0
    async with connect(url, subprotocols=["aurora.v1", f"bearer.{token}"]) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        for _ in range(count):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "join", "room": room}))
            while True:
                raw = await ws.recv()
                if json.loads(raw)["type"] == "presence":
                    break
            took.append((time.perf_counter() - started) * 1000)
            size = len(raw)
            await ws.send(json.dumps({"type": "leave", "room": room}))
            while json.loads(await ws.recv())["type"] != "left":
                pass
    return took, size


def run_join(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        redis_server = start_redis(Path(tmp))
        port = free_port()
        env = os.environ | {"AURORA_ENV": "local", "REDIS_URL": redis_server.url,
                            "JWT_SECRET": SECRET, "FANOUT_HOST": "127.0.0.1",
                            "FANOUT_PORT": str(port),
                            "PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'aurora'}"}  # fmt: skip
        replica = subprocess.Popen([sys.executable, "-m", "fanout"], cwd=ROOT, env=env,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_for_port(port, replica, timeout=30)
            started = time.perf_counter()
            seed_online(redis_server.url, "stadium", args.online)
            print(f"seeded {args.online} online in {time.perf_counter() - started:.1f} s")
            token = issue_token("bench-user", "bencher", Settings(env="local", jwt_secret=SECRET))
            took, size = asyncio.run(joins(f"ws://127.0.0.1:{port}", token, "stadium", args.joins))
            print(figures(f"join -> snapshot, {args.online} online", took[1:]))
            print(f"snapshot frame: {size} bytes")
        finally:
            replica.terminate()
            replica.wait(10)
            redis_server.stop()


def seed_rooms(db, cache, count: int, gap_ms: int) -> None:
    """`count` public rooms whose last messages are `gap_ms` apart, the bench
    user a member of each (with the activity key and the mirror of the rooms'
    `last` in Redis that the drain keeps), and 20 other users in the same
    rooms, so the user's memberships are a slice of a larger collection."""
    from aurora import room_list, rooms

    for name in (rooms.COLLECTION, rooms.MEMBERSHIPS):
        db[name].delete_many({})
    at = [1_700_000_000_000 + i * gap_ms for i in range(count)]
    lasts = {f"room-{i}": rooms.activity_key(ms, 0) for i, ms in enumerate(at)}
    db[rooms.COLLECTION].insert_many(
        [{"_id": room, "visibility": "public", "title": "", "owner": "x", "deleted": False,
          "last": last, "last_ts": at[i]}
         for i, (room, last) in enumerate(lasts.items())]
    )  # fmt: skip
    users = [("bench-user", "bencher")] + [(f"other-{k}", f"other{k}") for k in range(20)]
    db[rooms.MEMBERSHIPS].insert_many(
        [{"room": room, "user_id": user_id, "role": "member", "username": name,
          "activity": room_list.activity_of(last, room)}
         for room, last in lasts.items() for user_id, name in users]
    )  # fmt: skip
    room_list.raise_mirrors(cache, lasts)


def engine_read(db, count: int) -> float:
    """ms to read every copy of the bench user's memberships, as a listing
    with no cached list does (`room_list.my_rooms`)."""
    from aurora import room_list, rooms

    started = time.perf_counter()
    rows = list(db[rooms.MEMBERSHIPS].find(
        {"user_id": "bench-user"}, {"_id": 0, "room": 1, "role": 1, "activity": 1},
        batch_size=room_list.MAX_LISTED + 1,
    ))  # fmt: skip
    took = (time.perf_counter() - started) * 1000
    assert len(rows) == count, len(rows)
    return took


def run_listing(args: argparse.Namespace) -> None:
    import dataclasses

    with tempfile.TemporaryDirectory() as tmp:
        redis_server, mongo = start_redis(Path(tmp) / "r"), start_mongo(Path(tmp) / "m")
        os.environ |= {"AURORA_ENV": "local", "REDIS_URL": redis_server.url,
                       "MONGO_URL": mongo.url, "MONGO_DB": "bench", "JWT_SECRET": SECRET,
                       "POWERTOOLS_METRICS_NAMESPACE": "Bench",
                       # The per-user read budget would answer 429 past 20 requests.
                       "READS_PER_SECOND": "10000", "READ_BURST": "10000"}  # fmt: skip
        try:
            import redis

            from aurora.backends import database
            from aurora.keyspace import my_rooms_key, rooms_floor_key
            from aurora.settings import get_settings
            from tests.support.events import call, event, template_function

            settings = dataclasses.replace(get_settings())
            db = database(settings)
            cache = redis.Redis.from_url(redis_server.url, decode_responses=True)
            token = issue_token("bench-user", "bencher", settings)
            fn = template_function("MessagesFunction", concurrency=1)
            request = event("rooms", "http-v2", token=token)
            request["rawPath"] = request["requestContext"]["http"]["path"] = "/api/rooms"
            request["requestContext"]["http"]["method"] = "GET"
            request["rawQueryString"], request["queryStringParameters"] = "", None
            expected = settings.history_page_default

            def timed() -> float:
                started = time.perf_counter()
                status, body, _ = call(fn, request)
                took = (time.perf_counter() - started) * 1000
                if status != 200 or len(body["rooms"]) != min(expected, count):
                    print(f"answered {status}: {str(body)[:200]}")
                return took

            def uncached() -> float:
                cache.delete(rooms_floor_key("bench-user"), my_rooms_key("bench-user"))
                return timed()

            for count in (int(n) for n in args.rooms.split(",")):
                seed_rooms(db, cache, count, args.gap_ms)
                uncached()  # warm: the first call of a process loads the function
                # A user's first listing (or the first after a change to their
                # rooms) reads every membership and caches the list
                # (`aurora.room_list`), which the later ones read instead.
                without = [uncached() for _ in range(args.requests)]
                took = [timed() for _ in range(args.requests)]
                # The engine's share of a listing with no cached list: its one
                # read of the user's memberships, alone.
                read = [engine_read(db, count) for _ in range(args.requests)]
                what = f"member of {count} rooms (last messages {args.gap_ms} ms apart)"
                print(figures(f"GET /api/rooms first page, {what}", took))
                print(figures(f"  the same, no cached list of rooms yet, {what}", without))
                print(figures(f"  reading all {count} memberships alone, {what}", read))
                print(f"  that read / the request with no cached list, p50: "
                      f"{statistics.median(read) / statistics.median(without):.2f}")  # fmt: skip
            fn.close()
        finally:
            mongo.stop()
            redis_server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    j = sub.add_parser("join", help="presence snapshot on join, N online")
    j.add_argument("--online", type=int, default=10_000)
    j.add_argument("--joins", type=int, default=50)
    listing = sub.add_parser("listing", help="GET /api/rooms for a member of N rooms")
    listing.add_argument("--rooms", default="1,100,1000", help="comma-separated member counts")
    listing.add_argument("--requests", type=int, default=20)
    listing.add_argument(
        "--gap-ms",
        type=int,
        default=60_000,
        help="time between the rooms' last messages (1: all within a second, the worst case "
        "for the listing, which orders rooms within 5 s of its page's edge by reading them)",
    )
    args = parser.parse_args()
    {"join": run_join, "listing": run_listing}[args.mode](args)


if __name__ == "__main__":
    main()
