"""The per-user connection cap, shared by every replica through Redis.

Each open connection holds a lease in the user's sorted set (member = replica
and connection id, score = lease expiry in Redis time). Replicas renew their
leases; a replica killed without cleanup stops renewing, so its connections
stop counting after one lease period: the counts heal by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aurora.backends import redis_unavailable, slot_batches
from aurora.errors import UnavailableError
from aurora.keyspace import connections_key

if TYPE_CHECKING:
    import redis.asyncio

# Redis' own clock, so replicas with skewed clocks agree on expiry.
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] user key. ARGV: cap, lease ms, member. 1 = acquired, 0 = over the cap.
_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
)

# KEYS: user keys. ARGV[1] lease ms, then one member per key.
_RENEW = (
    _NOW_MS
    + """
local lease = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', key, lease)
end
return #KEYS
"""
)

# KEYS: user keys. ARGV: one member per key.
_RELEASE = """
for i, key in ipairs(KEYS) do
  redis.call('ZREM', key, ARGV[i])
end
return #KEYS
"""

_BATCH = 500  # leases per script call

log = logging.getLogger("aurora.fanout")


class ConnectionLimit:
    def __init__(self, client: redis.asyncio.Redis, *, cap: int, lease_seconds: int) -> None:
        self._redis = client
        self._cap = cap
        self._lease_ms = lease_seconds * 1000
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self.held: dict[str, str] = {}  # member -> user id, this replica's leases
        self._releasing: list[tuple[str, str]] = []  # (member, user id), ended, not yet given back
        self._flushing: asyncio.Future | None = None

    async def acquire(self, user_id: str, member: str) -> bool:
        """Take one of the user's slots; False when all are taken."""
        ok = await self._acquire(
            keys=[connections_key(user_id)], args=[self._cap, self._lease_ms, member]
        )
        if ok:
            self.held[member] = user_id
        return bool(ok)

    def tables(self) -> list[dict]:
        """What grows with the connections (`memory.compact`)."""
        return [self.held]

    def release(self, user_id: str, member: str) -> None:
        """Give the slot back, soon: leases that end together go back in one
        round trip per batch, from one task. No session waits for Redis to
        end, so a wave of 10,000 closes is 20 calls, not 10,000 sessions each
        holding its stack in the connection pool's queue (docs/benchmarks.md)."""
        if self.held.pop(member, None) is None:  # already by release_all
            return
        self._releasing.append((member, user_id))
        if self._flushing is None:
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        try:
            while self._releasing:
                items, self._releasing = self._releasing, []
                try:
                    with redis_unavailable():
                        await self._in_batches(self._release, items)
                except UnavailableError as exc:  # those leases expire instead
                    log.warning("could not release leases", extra={"error": str(exc.__cause__)})
        finally:
            self._flushing = None

    def under_way(self) -> list[asyncio.Future]:
        """The batch of releases still running, if any."""
        return [self._flushing] if self._flushing is not None else []

    async def release_all(self) -> None:
        """Give back every lease this replica holds (on shutdown: the clients
        told to reconnect elsewhere must find their slots free)."""
        items = list(self.held.items()) + self._releasing
        self.held.clear()
        self._releasing = []
        await self._in_batches(self._release, items)

    async def renew(self) -> None:
        """Extend every lease this replica holds (call every lease/3)."""
        await self._in_batches(self._renew, list(self.held.items()), self._lease_ms)

    async def _in_batches(self, script, items: list[tuple[str, str]], *args: object) -> None:
        """`script` over (member, user id) pairs, a batch per round trip (on
        a cluster, per hash slot too)."""
        keys = [connections_key(user) for _, user in items]
        for batch in slot_batches(self._redis, keys, _BATCH):
            await script(
                keys=[keys[i] for i in batch],
                args=[*args, *(items[i][0] for i in batch)],
            )
