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

On a Redis Cluster the script's keys and the room's channel share the slot of
the room's persistence partition (`aurora.keyspace.Layout`), and the frame is
published with SPUBLISH: it travels to the node owning that slot only. A send
retried after MOVED, ASK or a lost connection is safe when it carries a
`client_id`: the idempotency key answers the retry with the first id.

With `REDIS_REPLICA_ACKS` set, the script is followed by a WAIT on the same
connection, and a send is acknowledged only once that many replicas have it;
else the sender gets `unavailable` and resends. Other members may already
have seen it live: what a failover cannot lose is an acknowledged message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aurora.backends import run_script_replicated
from aurora.keyspace import SINGLE, Layout
from aurora.messages import frame_prefix
from aurora.settings import Settings
from aurora.stream import entry_fields, parse_id

if TYPE_CHECKING:
    import redis.asyncio

EPHEMERAL_ID = "-"

# KEYS: rate counter, stream partition, room window, the room's message
#       counter, the sender's unread-excluded messages there, then the
#       idempotency key when the send has a client_id (no placeholder: on a
#       cluster every key must be in the room's slot).
# ARGV: limit, window ms, channel, frame prefix, idempotency ttl ms, max backlog
#       (of the room's partition), resume window length, frame suffix
#       (`,"client_id":…}` or `}`), publish command (PUBLISH, or SPUBLISH on a
#       cluster), prefix of the room's reaction keys, resume window lifetime
#       ms, max backlog bytes, then the stream entry's field/value pairs.
# The room's counter numbers its messages (`n`, in the entry and the window):
# unread counts are differences of these numbers (`aurora.receipts`).
# Returns {1, id, frame} accepted, {2, id} duplicate, {0, retry_ms} rate
# limited, {3, backlog} backpressure.
SEND_SCRIPT = """
local idem = KEYS[6]
if idem then
  local seen = redis.call('GET', idem)
  if seen then
    -- A write, so that a WAIT after this retry covers the first send too
    -- (WAIT counts what its connection wrote last).
    redis.call('PEXPIRE', idem, ARGV[5])
    return {2, seen}
  end
end
local backlog = redis.call('XLEN', KEYS[2])
if backlog >= tonumber(ARGV[6]) then return {3, backlog} end
-- Bytes too: entries may be small or 16 KiB. MEMORY USAGE samples a few
-- nodes of the stream, so this costs the same at any length.
if backlog > 0 and redis.call('MEMORY', 'USAGE', KEYS[2]) >= tonumber(ARGV[12]) then
  return {3, backlog}
end
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {0, ttl}
end
local n = redis.call('INCR', KEYS[4])
local fields = {'n', n}
for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('ZADD', KEYS[5], n, n)
local frame = ARGV[4] .. ',"id":"' .. id .. '","ts":' .. string.match(id, '^(%d+)') .. ARGV[8]
-- The message leaving the window takes its reactions (`aurora.changes`) with it.
if redis.call('XLEN', KEYS[3]) >= tonumber(ARGV[7]) then
  local oldest = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)[1]
  if oldest then
    redis.call('DEL', ARGV[10] .. oldest[1], ARGV[10] .. 'counts:' .. oldest[1])
  end
end
-- The window reuses the stream id. pcall: if the stream was ever recreated
-- (ids went back), start the room's window afresh rather than fail half way.
local ok = redis.pcall('XADD', KEYS[3], 'MAXLEN', ARGV[7], id, 'f', frame, 'n', n)
if type(ok) == 'table' and ok.err then
  redis.call('DEL', KEYS[3])
  redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[7], id, 'f', frame, 'n', n)
end
redis.call('PEXPIRE', KEYS[3], ARGV[11])
if idem then redis.call('SET', idem, id, 'PX', ARGV[5]) end
redis.call(ARGV[9], ARGV[3], id .. ' ' .. frame)
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

    def __init__(
        self, client: redis.asyncio.Redis, settings: Settings, layout: Layout = SINGLE
    ) -> None:
        self._redis = client
        self._script = client.register_script(SEND_SCRIPT)
        self._settings = settings
        self._layout = layout
        self._publish = "SPUBLISH" if layout.cluster else "PUBLISH"

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
        keys, args = script_call(
            self._settings, self._layout, room, user_id, username, text, client_id, attachments
        )
        # Accepted and duplicate both answer with an `ack`: the replicas must
        # have the message first (a duplicate refreshes its key: a write).
        result = await run_script_replicated(
            self._redis, self._script, keys, args, self._settings, wrote=(1, 2)
        )
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
        channel = self._layout.room_channel(room)
        await self._redis.execute_command(self._publish, channel, f"{EPHEMERAL_ID} {frame}")


def script_call(
    settings: Settings,
    layout: Layout,
    room: str,
    user_id: str,
    username: str,
    text: str,
    client_id: str | None = None,
    attachments: Sequence[Mapping[str, Any]] = (),
) -> tuple[list[str], list[str | int]]:
    """The send script's KEYS and ARGV for one message (the `Sender`'s, and a
    benchmark's that pipelines many)."""
    checked = [dict(a) for a in attachments]
    fields = entry_fields(room, user_id, username, text, checked, client_id)
    suffix = "}" if client_id is None else f',"client_id":{_json_str(client_id)}}}'
    args: list[str | int] = [
        settings.rate_limit_messages,
        settings.rate_limit_window_ms,
        layout.room_channel(room),
        frame_prefix(room, user_id, username, text, checked),
        settings.idempotency_ttl_seconds * 1000,
        settings.max_backlog,
        settings.resume_window,
        suffix,
        "SPUBLISH" if layout.cluster else "PUBLISH",
        layout.reactions_key(room, ""),
        settings.resume_window_ttl_seconds * 1000,
        settings.max_backlog_bytes,
    ]
    for name, value in fields.items():
        args += [name, value]
    keys = [layout.rate_key(room, user_id), layout.room_stream_key(room), layout.window_key(room),
            layout.room_counter_key(room), layout.own_messages_key(room, user_id)]  # fmt: skip
    if client_id is not None:
        keys.append(layout.idempotency_key(room, user_id, client_id))
    return keys, args


async def recent(
    client: redis.asyncio.Redis,
    room: str,
    since: str | None,
    *,
    window: int,
    layout: Layout = SINGLE,
) -> Recent:
    """The room's messages and changes after `since` (exclusive) from its
    resume window, without deleted messages (`aurora.changes`), and the
    window's newest id. `since=None` asks for the newest id only."""
    key = layout.window_key(room)
    if since is not None:
        parse_id(since)  # ValidationError for a malformed id
    async with client.pipeline(transaction=True) as pipe:
        pipe.xrevrange(key, count=1)
        if since is not None:
            pipe.xrange(key, min="(" + since, max="+")
            pipe.xlen(key)
            pipe.xrange(key, count=1)
            pipe.zrange(layout.tombstones_key(room), 0, -1)
        replies = await pipe.execute()
    newest = replies[0][0][0] if replies[0] else None
    if since is None:
        return Recent(frames=[], complete=True, newest=newest)
    after, length, first, tombstones = replies[1:]
    deleted = set(tombstones)
    frames = [
        (entry_id, fields["f"])
        for entry_id, fields in after
        if not _of_deleted(entry_id, fields, deleted)
    ]
    # The window is trimmed exactly (MAXLEN, no `~`): while it is not full
    # nothing was ever dropped; once full, only ids from its first one on.
    complete = length < window or (bool(first) and parse_id(first[0][0]) <= parse_id(since))
    return Recent(frames=frames, complete=complete, newest=newest)


def _of_deleted(entry_id: str, fields: dict[str, str], deleted: set[str]) -> bool:
    """A deleted message's frame, or one of its edits: never replayed (its
    delete, later in the window, is)."""
    if not deleted:
        return False
    if "k" not in fields:  # a message
        return entry_id in deleted
    return fields["k"] != "delete" and fields["t"] in deleted


def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
