"""Who is online in a room: the Redis side, shared by the fan-out (which
holds, releases and sweeps entries) and the REST function (which pages them).

A room's online set (`keyspace.presence_key`) has one entry per user, scored
by its expiry in Redis time; who holds it (`presence_holders_key`) is kept per
replica, so a user with tabs on two replicas goes offline only when the last
one closes. Every write is one script on the room's slot: O(1) in the room's
size (a user's holders are at most the replicas). A change of a user's status
is published on the room's channel, in the script, as an ephemeral frame
(on a cluster with SPUBLISH, the keys in the room's partition slot: `Layout`):

    {"type":"presence","room","count","user","user_id","status":"online"|"offline"}

Entries lapse unless refreshed: a replica that dies stops refreshing, and the
sweep of any live replica with members in the room announces its users offline.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aurora.backends import redis_unavailable
from aurora.errors import ValidationError
from aurora.keyspace import SINGLE, Layout
from aurora.sending import EPHEMERAL_ID

if TYPE_CHECKING:
    import redis
    import redis.asyncio

# The online members a `presence` snapshot carries after `joined` (the rest:
# GET /api/rooms/{room}/presence): a join never writes more than ~4 KiB of it.
SNAPSHOT_SIZE = 50
# A published change starts with this (the Lua below writes the keys in this
# order), so the fan-out tells it from typing without parsing every frame.
FRAME_PREFIX = '{"type":"presence",'
# Expired entries one sweep of one room removes (the next sweep takes the rest).
SWEEP_BATCH = 500
_CURSOR = re.compile(r"[0-9]{1,20}", re.ASCII)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# The frame as JSON, keys in a fixed order (FRAME_PREFIX), published with the
# ephemeral id; `count` is of unexpired entries.
_ANNOUNCE = (
    """
local function announce(publish, channel, room, member, status, now)
  local space = string.find(member, ' ', 1, true)
  local count = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
  redis.call(publish, channel, '"""
    + EPHEMERAL_ID
    + """ {"type":"presence","room":'
    .. cjson.encode(room) .. ',"count":' .. count
    .. ',"user":' .. cjson.encode(string.sub(member, space + 1))
    .. ',"user_id":' .. cjson.encode(string.sub(member, 1, space - 1))
    .. ',"status":"' .. status .. '"}')
end
"""
)

# KEYS: online set, holders; ARGV: member, replica, ttl ms, channel, room,
# publish command (PUBLISH, or SPUBLISH on a cluster).
# Hold (or refresh) this replica's claim; announce `online` if the user was not.
HOLD = (
    _NOW
    + _ANNOUNCE
    + """
local ttl = tonumber(ARGV[3])
local expiry = now + ttl
redis.call('HSET', KEYS[2], ARGV[2], expiry)
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], expiry, ARGV[1])
-- Each key lives as long as its newest entry (only ever extended: replicas
-- may run with different TTLs while a setting changes).
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
if old and tonumber(old) > now then return 0 end
announce(ARGV[6], ARGV[4], ARGV[5], ARGV[1], 'online', now)
return 1
"""
)

# KEYS: online set, holders; ARGV: member, replica, channel, room, publish command.
# Let go of this replica's claim; announce `offline` if nobody else holds one.
RELEASE = (
    _NOW
    + _ANNOUNCE
    + """
redis.call('HDEL', KEYS[2], ARGV[2])
local rest = redis.call('HGETALL', KEYS[2])
local newest = 0
for i = 1, #rest, 2 do
  local expiry = tonumber(rest[i + 1])
  if expiry > now then
    if expiry > newest then newest = expiry end
  else
    redis.call('HDEL', KEYS[2], rest[i])
  end
end
if newest > 0 then
  redis.call('ZADD', KEYS[1], 'XX', newest, ARGV[1])
  return 0
end
redis.call('DEL', KEYS[2])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
announce(ARGV[5], ARGV[3], ARGV[4], ARGV[1], 'offline', now)
return 1
"""
)

# KEYS: online set; ARGV: channel, room, batch, publish command. Remove lapsed entries (their
# replica died or lost Redis) and announce each `offline`.
SWEEP = (
    _NOW
    + _ANNOUNCE
    + """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(gone) do redis.call('ZREM', KEYS[1], member) end
for _, member in ipairs(gone) do announce(ARGV[4], ARGV[1], ARGV[2], member, 'offline', now) end
return #gone
"""
)

# KEYS: online set; ARGV: cursor, count, first (1: the snapshot's first page).
# The unexpired entries of one ZSCAN step (or the first `count` by expiry), the count.
_PAGE = (
    _NOW
    + """
local count = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
if ARGV[3] == '1' then
  local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'LIMIT', 0, ARGV[2])
  return {'0', count, first}
end
local step = redis.call('ZSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local live = {}
for i = 1, #step[2], 2 do
  if tonumber(step[2][i + 1]) > now then live[#live + 1] = step[2][i] end
end
return {step[1], count, live}
"""
)


def member(user_id: str, username: str) -> str:
    """An online set's entry: the user id, a space, the username (neither has a space)."""
    return f"{user_id} {username}"


def _person(entry: str) -> dict[str, str]:
    user_id, _, username = entry.partition(" ")
    return {"user": username, "user_id": user_id}


class Scripts:
    """The presence scripts on one client: EVALSHA from the first call on.
    A single Redis's pipeline loads any the server lacks before it runs; a
    cluster pipeline cannot, and its caller loads `SOURCES` on NOSCRIPT
    (SCRIPT LOAD goes to every primary) and goes again."""

    SOURCES = (HOLD, RELEASE, SWEEP, _PAGE)

    def __init__(self, client: Any) -> None:
        self.hold = client.register_script(HOLD)
        self.release = client.register_script(RELEASE)
        self.sweep = client.register_script(SWEEP)
        self.page = client.register_script(_PAGE)


Call = tuple[list[str], list[Any]]  # a script's keys and arguments


def _publish(layout: Layout) -> str:
    return "SPUBLISH" if layout.cluster else "PUBLISH"


def hold_call(
    room: str, user_id: str, username: str, replica: str, ttl_ms: int, layout: Layout = SINGLE
) -> Call:
    keys = [layout.presence_key(room), layout.presence_holders_key(room, user_id)]
    return keys, [member(user_id, username), replica, ttl_ms, layout.room_channel(room), room,
                  _publish(layout)]  # fmt: skip


def release_call(
    room: str, user_id: str, username: str, replica: str, layout: Layout = SINGLE
) -> Call:
    keys = [layout.presence_key(room), layout.presence_holders_key(room, user_id)]
    return keys, [member(user_id, username), replica, layout.room_channel(room), room,
                  _publish(layout)]  # fmt: skip


def sweep_call(room: str, layout: Layout = SINGLE) -> Call:
    return [layout.presence_key(room)], [layout.room_channel(room), room, SWEEP_BATCH,
                                         _publish(layout)]  # fmt: skip


def snapshot_call(room: str, layout: Layout = SINGLE) -> Call:
    return [layout.presence_key(room)], ["0", SNAPSHOT_SIZE, "1"]


def snapshot_frame(room: str, reply: list[Any]) -> dict[str, Any]:
    """The frame written after `joined`, from the reply to `snapshot_call`:
    the room's online count and at most SNAPSHOT_SIZE of them."""
    _, count, first = reply
    return {"type": "presence", "room": room, "count": int(count),
            "online": [_person(e) for e in first], "more": int(count) > len(first)}  # fmt: skip


def page(
    client: redis.Redis, layout: Layout, room: str, cursor: str | None, limit: int
) -> dict[str, Any]:
    """`GET /api/rooms/{room}/presence`: `{"online", "count", "next"?}`. Pages
    follow a ZSCAN cursor: everyone online throughout is listed at least once,
    whoever comes and goes meanwhile; a page holds about `limit` (a small
    room's whole set comes in one page)."""
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise ValidationError("Invalid cursor", code="invalid_cursor")
    with redis_unavailable("Cannot read presence now, retry"):
        following, count, live = Scripts(client).page(
            keys=[layout.presence_key(room)], args=[cursor or "0", limit, "0"]
        )
    answer: dict[str, Any] = {"online": [_person(e) for e in live], "count": int(count)}
    if following != "0":
        answer["next"] = following
    return answer
