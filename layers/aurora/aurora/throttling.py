"""Throttling in Redis: failed logins, registrations and room creations.

Failed logins are counted per (username, client IP) and, more widely, per
client IP, in a window that starts at the first failure. There is
deliberately no limit per username alone: it would let anyone lock a user out
from everywhere by failing logins in their name. A success clears the
(username, IP) counter only. Usernames are hashed into the keys, so Redis
never lists who was attacked and long input cannot bloat a key.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import TYPE_CHECKING

from aurora.backends import redis_unavailable, slot_batches
from aurora.errors import RateLimitedError
from aurora.keyspace import (
    login_failures_key,
    network_login_failures_key,
    registrations_key,
    room_creations_key,
)
from aurora.settings import Settings
from aurora.users import username_key

if TYPE_CHECKING:
    import redis
    import redis.asyncio

# KEYS: counters; ARGV: their limits. The longest wait (ms) among the counters
# at their limit, 0 if none is.
_CHECK = """
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', key)
    if ttl > wait then wait = ttl end
  end
end
return wait
"""

# KEYS: counters; ARGV[1]: window (ms). Counts one event in each counter, its
# window starting at the first event (Lua keeps INCR and PEXPIRE together, and
# works on Redis 6.2, which has no EXPIRE ... NX).
_HIT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return counts
"""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def client_network(ip: str) -> str:
    """What one client is counted as: its IPv4 address, or its IPv6 /64 (one
    subscriber usually holds a whole /64, so single addresses cost nothing)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _login_keys(username: str, ip: str) -> list[str]:
    network = client_network(ip)
    return [
        login_failures_key(_digest(username_key(username), network)),
        network_login_failures_key(_digest(network)),
    ]


def check_login(client: redis.Redis, settings: Settings, username: str, ip: str) -> None:
    """RateLimitedError if this username from this IP, or this IP, failed too often."""
    limits = [settings.login_failures_per_user_ip, settings.login_failures_per_ip]
    with redis_unavailable():
        keys = _login_keys(username, ip)
        # One call on a single Redis; on a cluster one per slot (the two
        # counters are in different slots).
        wait_ms = max(
            client.register_script(_CHECK)(
                keys=[keys[i] for i in batch], args=[limits[i] for i in batch]
            )
            for batch in slot_batches(client, keys, len(keys))
        )
    if wait_ms:
        raise RateLimitedError(int(wait_ms), "Too many failed logins, retry later")


def record_login_failure(client: redis.Redis, settings: Settings, username: str, ip: str) -> None:
    with redis_unavailable():
        keys = _login_keys(username, ip)
        for batch in slot_batches(client, keys, len(keys)):
            client.register_script(_HIT)(
                keys=[keys[i] for i in batch],
                args=[settings.login_failure_window_seconds * 1000],
            )


def clear_login_failures(client: redis.Redis, username: str, ip: str) -> None:
    """After a success: this user from this IP starts afresh (the IP's count stays)."""
    with redis_unavailable():
        client.delete(_login_keys(username, ip)[0])


def take_registration(client: redis.Redis, settings: Settings, ip: str) -> None:
    """Count one registration attempt from this IP; RateLimitedError past the limit."""
    key = registrations_key(_digest(client_network(ip)))
    window_ms = settings.registration_window_seconds * 1000
    with redis_unavailable():
        (count,) = client.register_script(_HIT)(keys=[key], args=[window_ms])
        if count > settings.registrations_per_ip:
            wait_ms = client.pttl(key)
            raise RateLimitedError(max(1, wait_ms), "Too many registrations, retry later")


_CREATIONS_WINDOW_MS = 60_000
_TOO_MANY_ROOMS = "Too many rooms created, retry later"


def take_room_creation(client: redis.Redis, settings: Settings, user_id: str) -> None:
    """Count one room creation by this user; RateLimitedError past the budget."""
    key = room_creations_key(user_id)
    with redis_unavailable():
        (count,) = client.register_script(_HIT)(keys=[key], args=[_CREATIONS_WINDOW_MS])
        if count > settings.room_creations_per_minute:
            raise RateLimitedError(max(1, client.pttl(key)), _TOO_MANY_ROOMS)


async def take_room_creation_async(
    client: redis.asyncio.Redis, settings: Settings, user_id: str
) -> None:
    """The same budget, for the fan-out: a WebSocket join of a room id nobody
    has used yet brings the room into being, and counts as creating it."""
    key = room_creations_key(user_id)
    with redis_unavailable():
        (count,) = await client.eval(_HIT, 1, key, _CREATIONS_WINDOW_MS)
        if count > settings.room_creations_per_minute:
            raise RateLimitedError(max(1, await client.pttl(key)), _TOO_MANY_ROOMS)
