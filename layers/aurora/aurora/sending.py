"""Accepting a chat message, in one Redis round trip.

After the sender's budget across all rooms (`aurora.budget`, the user's own
keys, taken by the caller first), one server-side script does, atomically: the
idempotency check (a repeated `client_id` returns the first message's id),
the backlog bound (entries and bytes), the per-room rate limit, the append to
the persistence stream, the append to the room's resume window (which expires
once the room has been quiet for `RESUME_WINDOW_TTL_SECONDS`) and the publish
to the room's channel. So a message is never published without being queued
for persistence, or queued without being published.

The room channel carries `"<id> <frame>"`: the id lets a replica drop what it
already delivered after a reconnect; ephemeral frames (typing) use `-`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aurora.keyspace import STREAM_KEY, idempotency_key, rate_key, room_channel, window_key
from aurora.messages import frame_prefix
from aurora.settings import Settings
from aurora.stream import entry_fields, parse_id

if TYPE_CHECKING:
    import redis.asyncio

EPHEMERAL_ID = "-"

# KEYS: idempotency key (or ""), rate counter, stream, room window.
# ARGV: limit, window ms, channel, frame prefix, idempotency ttl ms, max backlog,
#       resume window length, frame suffix (`,"client_id":…}` or `}`), resume
#       window lifetime ms, max backlog bytes, then the stream entry's
#       field/value pairs.
# Returns {1, id, frame} accepted, {2, id} duplicate, {0, retry_ms} rate
# limited, {3, backlog} backpressure.
_SEND = """
if KEYS[1] ~= '' then
  local seen = redis.call('GET', KEYS[1])
  if seen then return {2, seen} end
end
local backlog = redis.call('XLEN', KEYS[3])
if backlog >= tonumber(ARGV[6]) then return {3, backlog} end
-- Bytes too: entries may be small or 16 KiB. MEMORY USAGE samples a few
-- nodes of the stream, so this costs the same at any length.
if backlog > 0 and redis.call('MEMORY', 'USAGE', KEYS[3]) >= tonumber(ARGV[10]) then
  return {3, backlog}
end
local count = redis.call('INCR', KEYS[2])
if count == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {0, ttl}
end
local fields = {}
for i = 11, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[3], '*', unpack(fields))
local frame = ARGV[4] .. ',"id":"' .. id .. '","ts":' .. string.match(id, '^(%d+)') .. ARGV[8]
-- The window reuses the stream id. pcall: if the stream was ever recreated
-- (ids went back), start the room's window afresh rather than fail half way.
local ok = redis.pcall('XADD', KEYS[4], 'MAXLEN', ARGV[7], id, 'f', frame)
if type(ok) == 'table' and ok.err then
  redis.call('DEL', KEYS[4])
  redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[7], id, 'f', frame)
end
redis.call('PEXPIRE', KEYS[4], ARGV[9])
if KEYS[1] ~= '' then redis.call('SET', KEYS[1], id, 'PX', ARGV[5]) end
redis.call('PUBLISH', ARGV[3], id .. ' ' .. frame)
return {1, id, frame}
"""


@dataclass(frozen=True)
class Accepted:
    id: str
    frame: str


@dataclass(frozen=True)
class Duplicate:
    """The same client_id was sent before; `id` is the first send's id."""

    id: str


@dataclass(frozen=True)
class RateLimited:
    retry_after_ms: int


@dataclass(frozen=True)
class Backpressure:
    """The persistence backlog is over its bound (the drain is behind)."""

    backlog: int


@dataclass(frozen=True)
class Recent:
    """What a client missed in a room since a given id."""

    frames: list[tuple[str, str]]  # (id, frame), oldest first
    complete: bool  # False when the window no longer reaches back to `since`
    newest: str | None  # the window's newest id (None: empty)


class Sender:
    """Sends messages through the script; one per Redis client."""

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self._redis = client
        self._script = client.register_script(_SEND)
        self._settings = settings

    async def send(
        self,
        *,
        room: str,
        user_id: str,
        username: str,
        text: str,
        client_id: str | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> Accepted | Duplicate | RateLimited | Backpressure:
        """Accept one message. `attachments` must already be checked
        (`aurora.attachments.verify_attachments`): they are stored and
        broadcast as given."""
        s = self._settings
        checked = [dict(a) for a in attachments]
        fields = entry_fields(room, user_id, username, text, checked, client_id)
        suffix = "}" if client_id is None else f',"client_id":{_json_str(client_id)}}}'
        args: list[str | int] = [
            s.rate_limit_messages,
            s.rate_limit_window_ms,
            room_channel(room),
            frame_prefix(room, user_id, username, text, checked),
            s.idempotency_ttl_seconds * 1000,
            s.max_backlog,
            s.resume_window,
            suffix,
            s.resume_window_ttl_seconds * 1000,
            s.max_backlog_bytes,
        ]
        for name, value in fields.items():
            args += [name, value]
        idem = "" if client_id is None else idempotency_key(user_id, client_id)
        keys = [idem, rate_key(room, user_id), STREAM_KEY, window_key(room)]
        result = await self._script(keys=keys, args=args)
        kind = int(result[0])
        if kind == 1:
            return Accepted(id=str(result[1]), frame=str(result[2]))
        if kind == 2:
            return Duplicate(id=str(result[1]))
        if kind == 3:
            return Backpressure(backlog=int(result[1]))
        return RateLimited(retry_after_ms=max(int(result[1]), 1))

    async def publish_ephemeral(self, room: str, frame: str) -> None:
        """A frame for the room's current members only (typing): not stored."""
        await self._redis.publish(room_channel(room), f"{EPHEMERAL_ID} {frame}")


async def recent(
    client: redis.asyncio.Redis, room: str, since: str | None, *, window: int
) -> Recent:
    """The room's messages after `since` (exclusive) from its resume window,
    and the window's newest id. `since=None` asks for the newest id only."""
    key = window_key(room)
    if since is not None:
        parse_id(since)  # ValidationError for a malformed id
    async with client.pipeline(transaction=True) as pipe:
        pipe.xrevrange(key, count=1)
        if since is not None:
            pipe.xrange(key, min="(" + since, max="+")
            pipe.xlen(key)
            pipe.xrange(key, count=1)
        replies = await pipe.execute()
    newest = replies[0][0][0] if replies[0] else None
    if since is None:
        return Recent(frames=[], complete=True, newest=newest)
    after, length, first = replies[1:]
    frames = [(entry_id, fields["f"]) for entry_id, fields in after]
    # The window is trimmed exactly (MAXLEN, no `~`): while it is not full
    # nothing was ever dropped; once full, only ids from its first one on.
    complete = length < window or (bool(first) and parse_id(first[0][0]) <= parse_id(since))
    return Recent(frames=frames, complete=complete, newest=newest)


def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
