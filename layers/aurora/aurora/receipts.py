"""Delivered and read cursors, and unread counts, without a write per message
per reader.

Each member has two cursors per room, in Redis (`keyspace.cursors_key`):
`delivered`, the newest message their client confirmed it received, and
`read`, the newest they have seen (reading implies receiving). A cursor only
moves forward; a stale or replayed confirmation changes nothing and
writes nothing. A move is published to the room as a `receipt` frame (not
kept for resume: the current cursors are one REST call away) and queued on
the persistence stream (schema 2, kind `read` or `delivered`), from which the
drain keeps the newest of each in MongoDB (`cursors`).

Unread counts come from numbers, not scans: the send script numbers each
room's messages (`n`: 1, 2, …), and keeps, per user and room, the numbers
of their own messages after their read cursor, and per room the numbers of
deleted messages. So, for a read cursor at number `c` in a room whose
newest message is `N`:

    unread = (N - c) - |own messages after c| - |deleted messages after c|

exact, in one pipelined round trip for any number of rooms.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydantic

from aurora import membership, messages, rooms
from aurora.backends import layout as deployment_layout
from aurora.backends import pipelined_script, redis_unavailable
from aurora.errors import ConflictError, ForbiddenError, NotFoundError
from aurora.keyspace import SINGLE, Layout
from aurora.stream import change_fields, parse_id

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from pymongo.database import Database

    from aurora.settings import Settings
    from aurora.tokens import Claims

READ, DELIVERED = "read", "delivered"
CURSORS = "cursors"  # MongoDB: {_id: "<room>/<user id>", room, user_id, read, delivered}
# "Read by" lists every reader's cursors for rooms up to this many readers.
READ_BY_MAX_MEMBERS = 100


@dataclass(frozen=True)
class Moved:
    """The cursors after a move (each "<message id>" or None)."""

    read: str | None
    delivered: str | None


# KEYS: 1 read cursors, 2 delivered cursors, 3 the user's own messages not
#       counted as unread, 4 the persistence stream.
# ARGV: 1 user id, 2 message number, 3 message id, 4 kind (read | delivered),
#       5 channel, 6 frame prefix, 7 the entry's fields as JSON [name, value,
#       ...] (kind filled in here), 8 max backlog.
# Returns {0} nothing moved, or {1, read cursor, delivered cursor} ("" for none).
_MOVE = """
local function newer(key)
  local current = redis.call('HGET', key, ARGV[1])
  return (not current) or tonumber(string.match(current, '^(%d+)')) < tonumber(ARGV[2])
end
local value = ARGV[2] .. ' ' .. ARGV[3]
local moved = {}
if ARGV[4] == 'read' and newer(KEYS[1]) then
  redis.call('HSET', KEYS[1], ARGV[1], value)
  -- Own messages up to the cursor no longer matter for the count.
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
  moved[#moved + 1] = 'read'
end
if newer(KEYS[2]) then  -- reading implies receiving
  redis.call('HSET', KEYS[2], ARGV[1], value)
  moved[#moved + 1] = 'delivered'
end
if #moved == 0 then return {0} end
-- Persisted unless the backlog is over its bound: a cursor is never
-- refused; MongoDB then catches up with a later move.
if redis.call('XLEN', KEYS[4]) < tonumber(ARGV[8]) then
  local fields = cjson.decode(ARGV[7])
  for _, kind in ipairs(moved) do
    fields[4] = kind
    redis.call('XADD', KEYS[4], '*', unpack(fields))
  end
end
local function id_of(key)
  local current = redis.call('HGET', key, ARGV[1])
  return current and string.match(current, ' (.+)$') or ''
end
local read, delivered = id_of(KEYS[1]), id_of(KEYS[2])
local function json(v) if v == '' then return 'null' end return '"' .. v .. '"' end
-- Published like typing ("-": no id), so resume never replays it.
redis.call(ARGV[9], ARGV[5], '- ' .. ARGV[6] .. ',"read":' .. json(read)
  .. ',"delivered":' .. json(delivered) .. '}')
return {1, read, delivered}
"""


def receipt_prefix(room: str, user_id: str, username: str) -> str:
    frame = {"type": "receipt", "room": room, "user": username, "user_id": user_id}
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))[:-1]


def _number_in_window(replies: list[Any], message_id: str) -> int | None:
    """The message's number from the window; None when older than the window."""
    found, first = replies
    if found:
        fields = found[0][1]
        if "k" in fields or "n" not in fields:  # a change, or a message without a number
            raise NotFoundError("No such message", code="not_found")
        return int(fields["n"])
    if first and parse_id(message_id) >= parse_id(first[0][0]):
        raise NotFoundError("No such message", code="not_found")
    return None


def _move_call(
    settings: Settings, layout: Layout, room: str, user_id: str, username: str, message_id: str,
    number: int, kind: str,
) -> tuple[list[str], list[str | int]]:  # fmt: skip
    keys = [layout.cursors_key(room, READ), layout.cursors_key(room, DELIVERED),
            layout.own_messages_key(room, user_id), layout.room_stream_key(room)]  # fmt: skip
    fields = change_fields(kind, room, user_id, username, message_id)
    fields["n"] = str(number)
    flat = [part for pair in fields.items() for part in pair]
    args: list[str | int] = [user_id, number, message_id, kind, layout.room_channel(room),
                             receipt_prefix(room, user_id, username), json.dumps(flat),
                             settings.max_backlog,
                             "SPUBLISH" if layout.cluster else "PUBLISH"]  # fmt: skip
    return keys, args


def _moved(result: list[Any]) -> Moved | None:
    if int(result[0]) == 0:
        return None
    return Moved(read=str(result[1]) or None, delivered=str(result[2]) or None)


class Cursors:
    """Cursor moves over the fan-out: Redis only. One per Redis client."""

    def __init__(
        self, client: redis.asyncio.Redis, settings: Settings, layout: Layout = SINGLE
    ) -> None:
        self._redis = client
        self._script = client.register_script(_MOVE)
        self._settings = settings
        self._layout = layout

    async def move(
        self, room: str, user_id: str, username: str, message_id: str, kind: str
    ) -> Moved | None:
        """Move the user's cursor forward to `message_id` (None: it was
        already there or beyond); ConflictError `use_rest` for a message
        older than the window."""
        parse_id(message_id)
        window = self._layout.window_key(room)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrange(window, min=message_id, max=message_id)
            pipe.xrange(window, count=1)
            number = _number_in_window(await pipe.execute(), message_id)
        if number is None:
            raise ConflictError(
                "This message is older than the live window; mark it read over REST",
                code="use_rest",
            )
        keys, args = _move_call(self._settings, self._layout, room, user_id, username, message_id,
                                number, kind)  # fmt: skip
        return _moved(await self._script(keys=keys, args=args))


def move_over_rest(
    db: Database, client: redis.Redis, settings: Settings, room: str, user_id: str,
    username: str, message_id: str,
) -> Moved | None:  # fmt: skip
    """`POST /api/rooms/{room}/read`: the window first, then MongoDB."""
    parse_id(message_id)
    layout = deployment_layout(settings)
    window = layout.window_key(room)
    pipe = client.pipeline(transaction=False)
    pipe.xrange(window, min=message_id, max=message_id)
    pipe.xrange(window, count=1)
    number = _number_in_window(pipe.execute(), message_id)
    if number is None:
        doc = db[messages.COLLECTION].find_one(
            {"_id": messages.stored_key(room, message_id)}, {"n": 1}
        )
        if doc is None or doc.get("n") is None:
            raise NotFoundError("No such message", code="not_found")
        number = doc["n"]
    keys, args = _move_call(settings, layout, room, user_id, username, message_id, number, READ)
    return _moved(client.register_script(_MOVE)(keys=keys, args=args))


# -- the REST twins -----------------------------------------------------------------------


class ReadRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    id: str


def read_over_rest(
    db: Database, client: redis.Redis, settings: Settings, claims: Claims, room: object,
    message_id: str,
) -> dict[str, Any]:  # fmt: skip
    """`POST /api/rooms/{room}/read` `{"id"}`: 200 with the caller's cursors
    (unchanged when `id` is not newer than the read cursor)."""
    room = rooms.check_room(room)
    with redis_unavailable():
        if not membership.standing(client, room, claims.user_id).may_read:
            raise ForbiddenError("Not a member of this room")
        moved = move_over_rest(db, client, settings, room, claims.user_id, claims.username,
                               message_id)  # fmt: skip
        if moved is None:
            cursors = read_by_anyone(client, deployment_layout(settings), room, [claims.user_id])
            return {"moved": False, **cursors[0]}
    return {"moved": True, "read": moved.read, "delivered": moved.delivered}


def with_unread(
    client: redis.Redis, layout: Layout, claims: Claims, listed: dict[str, Any]
) -> dict[str, Any]:
    """`GET /api/rooms`' page with each room's `unread` and the caller's `read` cursor."""
    with redis_unavailable():
        counts = unread(client, layout, claims.user_id, [r["room"] for r in listed["rooms"]])
    for room in listed["rooms"]:
        room |= counts[room["room"]]
    return listed


# -- reading them ------------------------------------------------------------------------


def _parse(value: str | None) -> tuple[int, str | None]:
    """(number, message id) of a stored cursor; (0, None) for none."""
    if not value:
        return 0, None
    number, message_id = value.split(" ", 1)
    return int(number), message_id


# KEYS: 1 the room's message counter, 2 read cursors, 3 the user's own
#       messages not counted, 4 the room's deleted numbers, 5 the resume window.
# ARGV: 1 user id.
# Returns {unread, read cursor ("" for none), the window's newest id ("" for none)}.
# One script, so the count and the id it counts up to are read at one
# instant: a message after that id is not in the count, one up to it is.
_UNREAD = """
local cursor = redis.call('HGET', KEYS[2], ARGV[1]) or ''
local number = tonumber(string.match(cursor, '^(%d+)') or '0')
local count = tonumber(redis.call('GET', KEYS[1]) or '0') - number
  - redis.call('ZCOUNT', KEYS[3], '(' .. number, '+inf')
  - redis.call('ZCOUNT', KEYS[4], '(' .. number, '+inf')
local newest = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
return {math.max(count, 0), cursor, newest[1] and newest[1][1] or ''}
"""


def unread(
    client: redis.Redis, layout: Layout, user_id: str, rooms: list[str]
) -> dict[str, dict[str, Any]]:
    """{room: {"unread": n, "read": <message id> | None, "counted_to": <id> | None}}
    for the caller, in one pipelined round trip whatever the number of rooms.
    `unread` counts the room's messages up to `counted_to` (the newest entry
    of its resume window, None when the window is empty): a client adds the
    messages it receives after that id, and only those."""
    if not rooms:
        return {}
    calls = [([layout.room_counter_key(room), layout.cursors_key(room, READ),
               layout.own_messages_key(room, user_id), layout.deleted_numbers_key(room),
               layout.window_key(room)], [user_id]) for room in rooms]  # fmt: skip
    answer = {}
    replies = pipelined_script(client, _UNREAD, calls)
    for room, (count, cursor, newest) in zip(rooms, replies, strict=True):
        answer[room] = {"unread": int(count), "read": _parse(cursor)[1],
                        "counted_to": newest or None}  # fmt: skip
    return answer


def read_by_anyone(
    client: redis.Redis, layout: Layout, room: str, users: list[str]
) -> list[dict[str, Any]]:
    """These users' cursors in the room: [{read, delivered}]."""
    pipe = client.pipeline(transaction=False)
    for user in users:
        pipe.hget(layout.cursors_key(room, READ), user)
        pipe.hget(layout.cursors_key(room, DELIVERED), user)
    found = pipe.execute()
    return [{"read": _parse(found[2 * i])[1], "delivered": _parse(found[2 * i + 1])[1]}
            for i in range(len(users))]  # fmt: skip


def read_by(client: redis.Redis, layout: Layout, room: str) -> list[dict[str, Any]]:
    """Every reader's cursors in the room: [{user_id, read, delivered}];
    ConflictError `room_too_large` over READ_BY_MAX_MEMBERS readers."""
    pipe = client.pipeline(transaction=False)
    pipe.hlen(layout.cursors_key(room, DELIVERED))
    pipe.hgetall(layout.cursors_key(room, READ))
    pipe.hgetall(layout.cursors_key(room, DELIVERED))
    size, reads, deliveries = pipe.execute()
    if size > READ_BY_MAX_MEMBERS:
        raise ConflictError(
            f"Read receipts are listed for rooms of up to {READ_BY_MAX_MEMBERS} readers",
            code="room_too_large",
        )
    return [
        {"user_id": user, "read": _parse(reads.get(user))[1],
         "delivered": _parse(delivered)[1]}
        for user, delivered in sorted(deliveries.items())
    ]  # fmt: skip


# -- the drain's half ----------------------------------------------------------------------


def persist(db: Database, entries: list[Any]) -> None:
    """Keep the newest cursors of each (room, user) in MongoDB, both kinds in
    one update: `$max` of a zero-padded number, so any order and any replay
    give the same result."""
    from pymongo import UpdateOne

    newest: dict[tuple[str, str], dict[str, tuple[int, str]]] = defaultdict(dict)
    for entry in entries:
        cursors = newest[(entry.room, entry.user_id)]
        number = entry.n or 0
        if number > cursors.get(entry.kind, (-1, ""))[0]:
            cursors[entry.kind] = (number, entry.target)
    if not newest:
        return
    updates = [
        UpdateOne(
            {"_id": f"{room}/{user_id}"},
            {"$max": {kind: stored_cursor(number, target)
                      for kind, (number, target) in cursors.items()},
             "$setOnInsert": {"room": room, "user_id": user_id}},
            upsert=True,
        )
        for (room, user_id), cursors in newest.items()
    ]  # fmt: skip
    _bulk_upserts(db[CURSORS], updates)


def stored_cursor(number: int, message_id: str) -> str:
    """A cursor as MongoDB keeps it: its number zero-padded (so `$max`
    orders by number), then the message id."""
    return f"{number:020d} {message_id}"


def _bulk_upserts(collection: Any, updates: list[Any]) -> None:
    from pymongo.errors import BulkWriteError

    try:
        collection.bulk_write(updates, ordered=False)
    except BulkWriteError as exc:
        # Two runs upserting one new document at once: the loser's insert is a
        # duplicate key; the document exists now, so its update applies.
        errors = exc.details.get("writeErrors", [])
        if not errors or any(e.get("code") != messages.DUPLICATE_KEY for e in errors):
            raise
        collection.bulk_write([updates[e["index"]] for e in errors], ordered=False)
