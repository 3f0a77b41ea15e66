"""What REDIS_REPLICA_ACKS costs a send: prints figures, asserts nothing
(docs/benchmarks.md).

    .venv/bin/python bench/replica_acks.py [--sends 2000] [--concurrency 1,32]

One Redis with one replica (both redis-servers of our own on loopback, in a
temporary folder, stopped by pid). The fan-out's send (`Sender.send`: the
room's script, then with acks a WAIT on the same connection) run `--sends`
times with REDIS_REPLICA_ACKS 0 and 1, side by side in one run, over
asyncio with each `--concurrency` sends at a time, to 100 rooms: the time
per send (p50, p95, p99) and sends/s, and the ratios of acks 1 to acks 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import platform
import statistics
import tempfile
import time
from pathlib import Path

from aurora.backends import async_redis_client
from aurora.sending import Accepted, Sender
from aurora.settings import Settings
from local.servers import attach_replica, start_redis


async def run(
    settings: Settings, sends: int, concurrency: int, tag: str
) -> tuple[list[float], float]:
    client = async_redis_client(settings.redis_url)
    sender = Sender(client, settings)
    took: list[float] = []
    counter = iter(range(sends))

    async def worker(k: int) -> None:
        for i in counter:
            started = time.perf_counter()
            outcome = await sender.send(room=f"room-{i % 100}", user_id=f"u{k}",
                                        username=f"user{k}", text="hello " * 8,
                                        client_id=f"{tag}-{i}")  # fmt: skip
            took.append((time.perf_counter() - started) * 1000)
            assert isinstance(outcome, Accepted), outcome

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return took, sends / elapsed


def figures(took: list[float]) -> tuple[float, float, float]:
    ordered = sorted(took)
    return (statistics.median(ordered), ordered[int(len(ordered) * 0.95)],
            ordered[int(len(ordered) * 0.99)])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,32", help="comma-separated")
    args = parser.parse_args()
    print(f"{platform.node()}: {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        primary = start_redis(Path(tmp) / "primary")
        replica = start_redis(Path(tmp) / "replica")
        try:
            attach_replica(primary, replica)
            base = Settings(env="local", redis_url=primary.url, rate_limit_messages=10**9,
                            max_backlog=10**9)  # fmt: skip
            for concurrency in (int(c) for c in args.concurrency.split(",")):
                results = {}
                for round_, acks in enumerate((0, 1, 0, 1)):  # interleaved: the second counts
                    settings = dataclasses.replace(base, redis_replica_acks=acks)
                    tag = f"{concurrency}-{round_}"
                    results[acks] = asyncio.run(run(settings, args.sends, concurrency, tag))
                for acks, (took, rate) in results.items():
                    p50, p95, p99 = figures(took)
                    print(f"concurrency {concurrency}, REDIS_REPLICA_ACKS={acks}: "
                          f"p50 {p50:.3f} ms  p95 {p95:.3f} ms  p99 {p99:.3f} ms  "
                          f"{rate:,.0f} sends/s")  # fmt: skip
                (took0, rate0), (took1, rate1) = results[0], results[1]
                print(f"  acks 1 / acks 0: p50 x{figures(took1)[0] / figures(took0)[0]:.2f}, "
                      f"sends/s x{rate1 / rate0:.2f}")  # fmt: skip
        finally:
            replica.stop()
            primary.stop()


if __name__ == "__main__":
    main()
