"""What one periodic revocation re-check costs a fan-out replica.

    python bench/revocation_sweep.py [connections]

Starts a redis-server on an ephemeral port in a temporary folder, makes
claims for N connections (default 10,000; each its own session, so 2 keys
each) and times `tokens.find_revoked_async` over all of them — the sweep
every replica runs each REVOCATION_CHECK_SECONDS — against the same check
done as pipelined EXISTS. Prints wall time and this process's CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid
from pathlib import Path

from aurora.backends import async_redis_client
from aurora.keyspace import session_key
from aurora.tokens import Claims, _revocation_keys, find_revoked_async
from local.servers import start_redis

ROUNDS = 5


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(url: str, count: int) -> None:
    client = async_redis_client(url)
    now = int(time.time())
    claims = [
        Claims(f"u{i}", f"user{i}", now, now + 3600, uuid.uuid4().hex, uuid.uuid4().hex)
        for i in range(count)
    ]
    async with client.pipeline(transaction=False) as pipe:
        for c in claims:
            pipe.hset(session_key(c.session_id), "user_id", c.user_id)
        await pipe.execute()

    async def pipelined_exists() -> None:
        async with client.pipeline(transaction=False) as pipe:
            for c in claims:
                for key in _revocation_keys(c):
                    pipe.exists(key)
            await pipe.execute()

    async def sweep() -> None:
        assert not any(await find_revoked_async(client, claims))

    for name, check in (("find_revoked_async", sweep), ("pipelined EXISTS", pipelined_exists)):
        await check()  # warm up
        wall, spent = [], []
        for _ in range(ROUNDS):
            t, c = time.perf_counter(), cpu()
            await check()
            wall.append(time.perf_counter() - t)
            spent.append(cpu() - c)
        median_wall, median_cpu = sorted(wall)[ROUNDS // 2], sorted(spent)[ROUNDS // 2]
        print(
            f"{name:>20}: {count} connections, median wall {median_wall * 1e3:.1f} ms,"
            f" median CPU {median_cpu * 1e3:.1f} ms"
        )
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("connections", type=int, nargs="?", default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = start_redis(Path(folder))
        try:
            asyncio.run(measure(server.url, args.connections))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
