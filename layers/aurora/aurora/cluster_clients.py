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

The asyncio client also waits for a free connection to a node whose
connections are all busy, as the single client's blocking pool does (redis-py's
cluster pool refuses at once), and has a short way for the send path
(`execute_in_slot`): a command whose slot the caller knows goes straight to
the node owning it, without redis-py's per-command routing (key parsing,
command policies, the attempt loop); anything that path does not handle is
handed to the full one. `execute_in_slot_pipeline` sends a script and a WAIT
that must share one connection.

Imported only in cluster mode: a single Redis never sees a slot move.
"""

from __future__ import annotations

import asyncio
import time

import redis
import redis.asyncio
from redis.asyncio.cluster import PipelineCommand
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterError,
    ConnectionError,
    MaxConnectionsError,
    NoScriptError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)

# Waits after each exhausted attempt: ~3 s in all, several times what moving
# a slot of 10,000 keys at redis-cli's default 10 per MIGRATE took on loopback
# (0.83 s; docs/cluster.md: a larger --cluster-pipeline shortens it).
SLOT_MOVE_BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
SLOT_MOVE_WAIT_S = sum(SLOT_MOVE_BACKOFF_S)
# As long as `backends.async_redis_client_for_single`'s pool waits.
POOL_WAIT_S = 5.0


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


# What the short way leaves to redis-py's full path: a slot map not read yet
# or out of date (MOVED is an AskError), a slot being moved, a node failing
# over or out of connections. Each means the command did not run, except a
# lost connection, which redis-py's own path retries all the same.
_NOT_SHORT = (
    AskError,
    ClusterError,
    ConnectionError,
    MaxConnectionsError,
    SlotNotCoveredError,
    TimeoutError,
    TryAgainError,
)


class AsyncRedisCluster(redis.asyncio.RedisCluster):
    """`redis.asyncio.RedisCluster`, retrying a command that a moving slot
    refused (the other tasks run meanwhile), and waiting for a free
    connection to a node whose connections are all busy."""

    async def execute_in_slot(self, slot: int, *args):
        """`args` (a command whose keys are all in `slot`) on the master
        owning `slot`: one dictionary lookup instead of redis-py's routing of
        each command, which costs the sender more than the command itself
        (docs/benchmarks.md); the full path on anything else."""
        try:
            node = self.nodes_manager.get_node_from_slot(slot)
            return await node.execute_command(*args)
        except _NOT_SHORT:
            return await self.execute_command(*args)

    async def execute_in_slot_pipeline(
        self, key: str, commands: list[tuple], *, script: str | None = None
    ) -> list:
        """`commands` (whose keys all share `key`'s slot) in one round trip on
        one connection to the master owning that slot: their replies, in
        order. One connection, because WAIT counts the replicas that have
        *this connection's* writes. A slot map out of date, or a failover,
        is waited out by redis-py's full path (a read of `key`), then the
        whole is sent once more; NOSCRIPT loads `script` on every master
        first. Otherwise the first error raises."""
        for attempt in (1, 2):
            try:
                node = self.nodes_manager.get_node_from_slot(key_slot(key.encode()))
                batch = [PipelineCommand(i, *command) for i, command in enumerate(commands)]
                await node.execute_pipeline(batch)
            except _NOT_SHORT as exc:
                error: Exception = exc
            else:
                results = [command.result for command in batch]
                error = next((r for r in results if isinstance(r, Exception)), None)
                if error is None:
                    return results
            if attempt == 2:
                raise error
            if isinstance(error, NoScriptError) and script is not None:
                await self.script_load(script)
            elif isinstance(error, _NOT_SHORT):
                await self.execute_command("EXISTS", key)
            else:
                raise error
        raise AssertionError("unreachable")

    async def execute_command(self, *args, **kwargs):
        loop = asyncio.get_running_loop()
        waits, pool_deadline = iter(SLOT_MOVE_BACKOFF_S), None
        while True:
            try:
                return await super().execute_command(*args, **kwargs)
            except ClusterError as exc:
                delay = next(waits, None) if _never_ran(exc) else None
                if delay is None:
                    raise
            except MaxConnectionsError:
                # Every connection to the node is busy. The node's pool here
                # does not wait for one, unlike the single client's blocking
                # pool: wait as long as that would, or a burst of sends is
                # refused. Nothing was sent.
                pool_deadline = pool_deadline or loop.time() + POOL_WAIT_S
                if loop.time() >= pool_deadline:
                    raise
                delay = 0.002
            await asyncio.sleep(delay)
