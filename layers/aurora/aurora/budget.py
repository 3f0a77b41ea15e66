"""Per-user budgets in Redis: what one account may send across all its rooms,
how often it may read history, search or list rooms over REST, and how many
bytes of attachments it may store.

Two token buckets kept together in one hash of the user's own
(`keyspace.budget_key`, hash-tagged by the user id): messages
(`USER_MESSAGES_PER_SECOND` sustained, bursts of `USER_MESSAGE_BURST`) and
bytes (`USER_BYTES_PER_WINDOW` per `USER_BYTES_WINDOW_SECONDS` sustained,
bursts of as much). One script refills both by the time elapsed (Redis's
clock, so every replica agrees), then takes one message and its bytes from
both, or from neither and answers how long to wait.

Order on the send path: this budget first, then the room's send script
(`aurora.sending`). In Redis Cluster the two live in different slots, so they
cannot be one transaction; the budget is decided atomically in its own slot
before the room is touched, so accepted messages never exceed it. The cost of
the split is the other way round: a send the room script then refuses (the
room's own rate limit, backpressure, a duplicate `client_id`) has already
spent its budget, so a user can get at most that many fewer messages through
than the budget allows — never more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aurora.backends import redis_unavailable, run_script
from aurora.errors import ForbiddenError, RateLimitedError
from aurora.keyspace import budget_key, reads_key, storage_key
from aurora.settings import Settings

if TYPE_CHECKING:
    import redis
    import redis.asyncio

# KEYS[1]: the user's budget hash {m: message tokens, b: byte tokens, t: ms}.
# ARGV: messages per ms, message burst, byte burst, bytes per ms, this send's
# bytes, the key's lifetime (ms: both buckets full again). Returns 0 when the
# send may go (both buckets debited), else the wait in ms (nothing debited).
_TAKE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local byte_burst, byte_rate = tonumber(ARGV[3]), tonumber(ARGV[4])
local cost = math.min(tonumber(ARGV[5]), byte_burst)
local state = redis.call('HMGET', KEYS[1], 'm', 'b', 't')
local messages = tonumber(state[1]) or burst
local bytes = tonumber(state[2]) or byte_burst
local elapsed = math.max(0, now - (tonumber(state[3]) or now))
messages = math.min(burst, messages + elapsed * rate)
bytes = math.min(byte_burst, bytes + elapsed * byte_rate)
local wait = 0
if messages < 1 then wait = math.ceil((1 - messages) / rate) end
if bytes < cost then wait = math.max(wait, math.ceil((cost - bytes) / byte_rate)) end
if wait > 0 then return wait end
redis.call('HSET', KEYS[1], 'm', string.format('%.4f', messages - 1),
           'b', string.format('%.1f', bytes - cost), 't', now)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 0
"""


@dataclass(frozen=True)
class OverBudget:
    retry_after_ms: int


class SendBudget:
    """Takes one send from a user's budget; one per Redis client."""

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self._redis = client
        self._script = client.register_script(_TAKE)
        s = settings
        byte_rate = s.user_bytes_per_window / (s.user_bytes_window_seconds * 1000)
        # The key lives until both buckets would be full again: then absent
        # and full are the same, and an idle user costs Redis nothing.
        refill_ms = max(
            s.user_message_burst * 1000 / s.user_messages_per_second,
            s.user_bytes_window_seconds * 1000,
        )
        self._args = (
            s.user_messages_per_second / 1000,
            s.user_message_burst,
            s.user_bytes_per_window,
            byte_rate,
        )
        self._ttl_ms = int(refill_ms) + 1000

    async def take(self, user_id: str, size: int) -> OverBudget | None:
        """Debit one message of `size` bytes; OverBudget (nothing debited) if
        either bucket cannot pay for it yet."""
        wait = await run_script(
            self._redis, self._script, [budget_key(user_id)], [*self._args, size, self._ttl_ms]
        )
        return OverBudget(retry_after_ms=int(wait)) if int(wait) > 0 else None


def take_read(client: redis.Redis, settings: Settings, caller: str) -> None:
    """One history, search or room-listing request by `caller` (a user id):
    RateLimitedError past `READS_PER_SECOND`, bursts of `READ_BURST`. Those
    routes read MongoDB, search by scanning a room: one bucket for all three,
    so no client can keep the database busy for everyone else.

    One bucket is the send script with a free second one (cost 0)."""
    rate, burst = settings.reads_per_second, settings.read_burst
    ttl_ms = int(burst * 1000 / rate) + 1000
    with redis_unavailable():
        wait = int(
            client.register_script(_TAKE)(
                keys=[reads_key(caller)], args=[rate / 1000, burst, 1, 1, 0, ttl_ms]
            )
        )
    if wait > 0:
        raise RateLimitedError(wait, "Too many requests, retry later")


# KEYS[1]: the user's stored bytes; ARGV: this upload's bytes, the budget.
# Adds the upload if it fits (returns the new total), else -1 (nothing added).
_STORE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


def take_storage(client: redis.Redis, settings: Settings, user_id: str, size: int) -> None:
    """Count an upload of `size` bytes against the user's attachment storage
    (`ATTACHMENT_STORAGE_PER_USER`), when its upload link is granted: whatever
    the user then uploads, their files never take more. ForbiddenError
    `storage_quota_exceeded` (nothing counted) past it."""
    limit = settings.attachment_storage_per_user
    with redis_unavailable():
        total = int(client.register_script(_STORE)(keys=[storage_key(user_id)], args=[size, limit]))
    if total < 0:
        raise ForbiddenError(
            f"Attachment storage of {limit} bytes used up", code="storage_quota_exceeded"
        )
