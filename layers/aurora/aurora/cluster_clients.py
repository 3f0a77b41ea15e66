"""redis-py's Redis Cluster clients, made to wait out a slot being moved.

While a reshard moves a slot's keys one MIGRATE batch at a time, a script or
transaction whose keys are split between the old and the new owner is refused
with TRYAGAIN (a room's send script: its idempotency key is new, its stream
already moved). redis-py retries redirects and TRYAGAIN 16 times, sleeping
50 ms in the second half, then raises `ClusterError("TTL exhausted.")`: about
0.4 s, shorter than moving a busy partition's slot. A command that ends so
never ran on any node (every attempt was refused before executing), so here
it is retried again, with backoff, for up to `SLOT_MOVE_WAIT_S` in all; past
that the caller gets the error (UnavailableError, as for any outage).

Imported only in cluster mode: a single Redis never sees a slot move.
"""

from __future__ import annotations

import asyncio
import time

import redis
import redis.asyncio
from redis.exceptions import ClusterError

# Waits after each exhausted attempt: ~3 s in all, the time redis-cli's
# reshard takes to move a slot of ~10,000 keys at its default 10 per MIGRATE
# (docs/cluster.md: a larger --cluster-pipeline shortens it).
SLOT_MOVE_BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
SLOT_MOVE_WAIT_S = sum(SLOT_MOVE_BACKOFF_S)


def _never_ran(exc: ClusterError) -> bool:
    # ClusterDownError (a subclass) is the failover's, handled by redis-py.
    return type(exc) is ClusterError


class RedisCluster(redis.RedisCluster):
    """`redis.RedisCluster`, retrying a command that a moving slot refused."""

    def execute_command(self, *args, **kwargs):
        for delay in SLOT_MOVE_BACKOFF_S:
            try:
                return super().execute_command(*args, **kwargs)
            except ClusterError as exc:
                if not _never_ran(exc):
                    raise
            time.sleep(delay)
        return super().execute_command(*args, **kwargs)


class AsyncRedisCluster(redis.asyncio.RedisCluster):
    """`redis.asyncio.RedisCluster`, retrying a command that a moving slot
    refused (the other tasks run meanwhile)."""

    async def execute_command(self, *args, **kwargs):
        for delay in SLOT_MOVE_BACKOFF_S:
            try:
                return await super().execute_command(*args, **kwargs)
            except ClusterError as exc:
                if not _never_ran(exc):
                    raise
            await asyncio.sleep(delay)
        return await super().execute_command(*args, **kwargs)
