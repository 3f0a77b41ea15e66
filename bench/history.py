"""History read latency: p50/p99 of a 50-message page and of a search, over
N messages stored in one room (SecantusDB, the server used locally and in
the tests), through `aurora.history` as the messages function calls it.

    .venv/bin/python bench/history.py [--messages 100000] [--runs 50]
                                      [--neighbour-messages 20000]

--neighbour-messages also stores that many (older) messages in another room
first, and times a page of a small room next to it: what one room's size
costs the others.

Starts its own SecantusDB (standalone) in a temporary folder on an ephemeral
loopback port, and stops it by pid.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aurora import history, messages
from aurora.backends import database
from aurora.errors import UnavailableError
from aurora.settings import Settings
from aurora.stream import StreamEntry
from local.servers import start_mongo

T0 = 1_700_000_000_000


def fill(db, n: int, room: str = "general", t0: int = T0) -> list[str]:
    """n messages in `room`, 10 per millisecond from `t0`; every 1,000th says "needle"."""
    ids = []
    for start in range(0, n, 5_000):
        docs = [
            messages.document(
                StreamEntry(id=f"{t0 + i // 10}-{i % 10}", room=room, user_id=f"u{i % 50}",
                            username=f"user{i % 50}",
                            text=f"message {i} needle" if i % 1000 == 0 else f"message {i} hay")
            )
            for i in range(start, min(n, start + 5_000))
        ]  # fmt: skip
        db[messages.COLLECTION].insert_many(docs, ordered=False)
        ids += [d["id"] for d in docs]
    return ids


def timed(name: str, runs: int, call: Callable[[], dict]) -> None:
    samples, outcome = [], ""
    for _ in range(runs):
        start = time.perf_counter()
        try:
            outcome = f"{len(call()['messages'])} messages"
        except UnavailableError as exc:
            outcome = exc.code
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * len(samples)) - 1)]
    print(f"{name:<46} p50 {statistics.median(samples):8.1f} ms  p99 {p99:8.1f} ms  ({outcome})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--neighbour-messages", type=int, default=0)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {platform.node()}")
    with tempfile.TemporaryDirectory() as tmp:
        mongo = start_mongo(Path(tmp) / "mongo")
        try:
            settings = dataclasses.replace(
                Settings(env="local"), mongo_url=mongo.url, mongo_db="bench_history"
            )
            db = database(settings)
            start = time.perf_counter()
            ids = fill(db, args.messages)
            print(f"stored {len(ids)} messages in {time.perf_counter() - start:.1f} s")
            if args.neighbour_messages:
                fill(db, args.neighbour_messages, "busy", T0 - 10**8)
                fill(db, 200, "quiet", T0 - 2 * 10**8)
                print(f"stored {args.neighbour_messages} in room busy, 200 in room quiet")
                timed("page: newest 50 of quiet (200), next to busy", args.runs,
                      lambda: history.page(db, "quiet", settings, limit=50))  # fmt: skip
            middle = ids[len(ids) // 2]

            def page(**cursor: str) -> Callable[[], dict]:
                return lambda: history.page(db, "general", settings, limit=50, **cursor)

            def search(q: str) -> Callable[[], dict]:
                return lambda: history.search(db, "general", q, settings, limit=50)

            timed("page: newest 50", args.runs, page())
            timed("page: 50 before the middle", args.runs, page(before=middle))
            timed("page: 50 after the middle", args.runs, page(after=middle))
            timed("search: common word (every message)", args.runs, search("HAY"))
            timed("search: 1 in 1,000 (fills 50 only at the end)", args.runs, search("needle"))
            timed("search: no match (reads the whole room)", max(3, args.runs // 10),
                  search("absent"))  # fmt: skip
        finally:
            mongo.stop()


if __name__ == "__main__":
    main()
