"""Changing a sent message: edit (its author), delete (its author, or a room
owner or admin) and react (anyone who may read the room), over the
WebSocket (the fan-out) and REST alike.

A change travels the path of a message: one script appends it to the
persistence stream (schema version 2, its own stream id), to the room's
resume window, and publishes it to the room, atomically. The drain applies
it to MongoDB (`aurora.message_state`). Before the script, the change is
checked against Redis only: the room's resume window tells who wrote the
message and the room's tombstones whether it is deleted. A message older
than the window is answered `use_rest` on the WebSocket; the REST twin
looks it up in MongoDB instead.

Tombstones (`keyspace.tombstones_key`) list the messages deleted while
their delete is in the window; resume (`sending.recent`) drops those
messages' frames and their changes, so a deleted text is never replayed.
A message's reactions live in Redis while it is in the window
(`keyspace.reactions_key`), so a reaction is counted once, within the
per-user budget, and every `react` frame carries the message's counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydantic

from aurora import attachments, membership, messages, rooms
from aurora.backends import layout as deployment_layout
from aurora.backends import redis_unavailable, run_script_replicated, run_script_replicated_sync
from aurora.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from aurora.keyspace import SINGLE, Layout
from aurora.sending import Accepted, Backpressure, RateLimited
from aurora.stream import change_fields, parse_id

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from pymongo.database import Database

    from aurora.membership import Standing
    from aurora.settings import Settings
    from aurora.tokens import Claims

EDIT, DELETE, REACT = "edit", "delete", "react"
# Distinct emoji on one message, all users together: bounds its counts.
MAX_DISTINCT_REACTIONS = 50
# Reactions of a message older than the window, counted in Redis from what
# MongoDB had (REST): kept this long, then counted afresh from MongoDB.
SEEDED_REACTIONS_SECONDS = 3600


@dataclass(frozen=True)
class Change:
    """One requested change of the message `target` in `room`."""

    kind: str  # edit | delete | react
    room: str
    target: str  # the message's stream id
    text: str = ""  # edit
    emoji: str = ""  # react
    on: bool = True  # react: add (True) or remove (False); never a toggle


@dataclass(frozen=True)
class Unchanged:
    """Nothing to do, nothing queued: a delete of a deleted message, a
    reaction added twice or removed when absent."""


@dataclass(frozen=True)
class Target:
    """The message a change names, as Redis (or MongoDB) knows it."""

    author: str  # user id
    deleted: bool
    attachment_urls: tuple[str, ...] = ()
    n: int | None = None  # its number in the room (None: stored before numbers existed)
    # From MongoDB only (REST, older than the window): [[emoji, [user ids]]].
    stored_reactions: list[list[Any]] | None = None


Outcome = Accepted | Unchanged | RateLimited | Backpressure


def check_edit_text(text: str, max_text_chars: int) -> None:
    """An edit's text: not blank (delete the message instead), within the
    message limit (`MAX_TEXT_CHARS`)."""
    if not text.strip():
        raise ValidationError("Text is empty; delete the message instead", code="empty_text")
    if len(text) > max_text_chars:
        raise ValidationError(f"Text longer than {max_text_chars} characters", code="too_long")


# -- who may ----------------------------------------------------------------------------


def may_edit(user_id: str, target: Target) -> bool:
    """Only the author edits a message."""
    return user_id == target.author


def may_delete(user_id: str, room: str, target: Target, standing: Standing) -> bool:
    """The one delete rule: the author, or whoever moderates the room (its
    owner and admins; operators in a public room: `membership.may_moderate`)."""
    return user_id == target.author or membership.may_moderate(user_id, room, standing)


def check_allowed(change: Change, user_id: str, target: Target, standing: Standing) -> None:
    """ForbiddenError or ConflictError unless `user_id` may make this change now.
    Reacting needs only the right to read the room."""
    if not standing.may_read:
        raise ForbiddenError("You may not write to this room")
    if change.kind == EDIT and not may_edit(user_id, target):
        raise ForbiddenError("Only the author edits a message")
    if change.kind == DELETE and not may_delete(user_id, change.room, target, standing):
        raise ForbiddenError("Only the author, the room's owner or an admin deletes a message")
    if change.kind != DELETE and target.deleted:
        raise ConflictError("The message is deleted", code="deleted")


# -- finding the message in Redis ------------------------------------------------------


def _queue_lookup(pipe: Any, layout: Layout, room: str, target: str) -> None:
    window = layout.window_key(room)
    pipe.xrange(window, min=target, max=target)
    pipe.zscore(layout.tombstones_key(room), target)
    pipe.xrange(window, count=1)


def _interpret(replies: list[Any], target: str) -> Target | None:
    """The message from the window; None when it is older than the window
    (ask MongoDB); NotFoundError when no message has this id."""
    found, tombstone, first = replies
    deleted = tombstone is not None
    if found:
        fields = found[0][1]
        if "k" in fields:  # the id of a change, not of a message
            raise NotFoundError("No such message", code="not_found")
        frame = json.loads(fields["f"])
        urls = tuple(a["url"] for a in frame.get("attachments") or ())
        number = int(fields["n"]) if "n" in fields else None
        return Target(frame["user_id"], deleted, urls, number)
    if first and parse_id(target) >= parse_id(first[0][0]):
        raise NotFoundError("No such message", code="not_found")
    return None


def lookup(client: redis.Redis, room: str, target: str, layout: Layout = SINGLE) -> Target | None:
    pipe = client.pipeline(transaction=False)
    _queue_lookup(pipe, layout, room, target)
    return _interpret(pipe.execute(), target)


async def lookup_async(
    client: redis.asyncio.Redis, room: str, target: str, layout: Layout = SINGLE
) -> Target | None:
    async with client.pipeline(transaction=False) as pipe:
        _queue_lookup(pipe, layout, room, target)
        return _interpret(await pipe.execute(), target)


def stored_target(db: Database, room: str, target: str) -> Target:
    """The message as MongoDB has it (REST, for what the window no longer holds)."""
    doc = db[messages.COLLECTION].find_one(
        {"_id": messages.stored_key(room, target)},
        {"user_id": 1, "deleted": 1, "attachments": 1, "reactions": 1, "n": 1},
    )
    if doc is None:
        raise NotFoundError("No such message", code="not_found")
    urls = tuple(a["url"] for a in doc.get("attachments") or ())
    reactions = [[r["emoji"], list(r["users"])] for r in doc.get("reactions") or ()]
    return Target(doc["user_id"], bool(doc.get("deleted")), urls, doc.get("n"), reactions)


# -- the change script ---------------------------------------------------------------------

# KEYS: 1 stream, 2 room window, 3 tombstones, 4 change rate counter,
#       5 the message's reactions (who reacted with what), 6 its counts,
#       7 the author's messages not counted as unread for them, 8 the room's
#       deleted message numbers.
# ARGV: 1 limit, 2 rate window ms, 3 channel, 4 frame prefix, 5 resume window
#       length, 6 max backlog, 7 kind, 8 target id, 9 the entry's fields as a
#       JSON array [name, value, ...], 10 prefix of the reaction keys (for
#       the message leaving the window), 11 the message's number or "",
#       12 publish command (PUBLISH, or SPUBLISH on a cluster), then for a
#       reaction: 13 user id, 14 emoji, 15 "1" add / "0" remove, 16 per-user
#       budget, 17 distinct emoji per message, 18 seed JSON
#       [[emoji, [user ids]], ...] or "", 19 seed lifetime (s).
# On a cluster every key is in the room's partition slot (`Layout`).
# Returns {1, id, frame} accepted, {0, retry_ms} rate limited, {3, backlog}
# backpressure, {4} the target is deleted, {5} unchanged (a reaction added
# twice, or removed when absent), {6} over the user's reaction budget, {7}
# too many distinct reactions on the message. Nothing is written but {1}.
_CHANGE = """
local backlog = redis.call('XLEN', KEYS[1])
if backlog >= tonumber(ARGV[6]) then return {3, backlog} end
local count = redis.call('INCR', KEYS[4])
if count == 1 then redis.call('PEXPIRE', KEYS[4], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[4])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[4], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {0, ttl}
end
if redis.call('ZSCORE', KEYS[3], ARGV[8]) then return {4} end
local suffix = ''
if ARGV[7] == 'react' then
  local user, emoji, on = ARGV[13], ARGV[14], ARGV[15] == '1'
  if redis.call('EXISTS', KEYS[5]) == 0 then
    -- 's' marks the state as present, even with no reaction left in it.
    redis.call('HSET', KEYS[5], 's', '1')
    if ARGV[18] ~= '' then
      -- An old message (REST): start from what the database has.
      for _, r in ipairs(cjson.decode(ARGV[18])) do
        redis.call('HSET', KEYS[6], r[1], #r[2])
        for _, u in ipairs(r[2]) do
          redis.call('HSET', KEYS[5], 'u:' .. u .. ':' .. r[1], '1')
          redis.call('HINCRBY', KEYS[5], 'n:' .. u, 1)
        end
      end
      redis.call('EXPIRE', KEYS[5], ARGV[19])
      redis.call('EXPIRE', KEYS[6], ARGV[19])
    end
  end
  local member = 'u:' .. user .. ':' .. emoji
  if on then
    if redis.call('HEXISTS', KEYS[5], member) == 1 then return {5} end
    if tonumber(redis.call('HGET', KEYS[5], 'n:' .. user) or '0') >= tonumber(ARGV[16]) then
      return {6}
    end
    if redis.call('HEXISTS', KEYS[6], emoji) == 0
        and redis.call('HLEN', KEYS[6]) >= tonumber(ARGV[17]) then
      return {7}
    end
    redis.call('HSET', KEYS[5], member, '1')
    redis.call('HINCRBY', KEYS[5], 'n:' .. user, 1)
    redis.call('HINCRBY', KEYS[6], emoji, 1)
  else
    if redis.call('HDEL', KEYS[5], member) == 0 then return {5} end
    redis.call('HINCRBY', KEYS[5], 'n:' .. user, -1)
    if redis.call('HINCRBY', KEYS[6], emoji, -1) <= 0 then redis.call('HDEL', KEYS[6], emoji) end
  end
  local counts = redis.call('HGETALL', KEYS[6])
  local pairs_ = {}
  for i = 1, #counts, 2 do pairs_[#pairs_ + 1] = {counts[i], counts[i + 1]} end
  table.sort(pairs_, function(a, b) return a[1] < b[1] end)
  local parts = {}
  for _, p in ipairs(pairs_) do
    parts[#parts + 1] = '{"emoji":' .. cjson.encode(p[1]) .. ',"count":' .. p[2] .. '}'
  end
  suffix = ',"on":' .. (on and 'true' or 'false')
    .. ',"reactions":[' .. table.concat(parts, ',') .. ']'
end
local id = redis.call('XADD', KEYS[1], '*', unpack(cjson.decode(ARGV[9])))
local ms = string.match(id, '^(%d+)')
local frame = ARGV[4] .. suffix .. ',"id":"' .. id .. '","ts":' .. ms .. '}'
-- The message leaving the window takes its reaction state with it.
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[5]) then
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
  if oldest then
    redis.call('DEL', ARGV[10] .. oldest[1], ARGV[10] .. 'counts:' .. oldest[1])
  end
end
-- `t` (target) and `k` (kind) let resume drop the frames of a deleted message.
local entry = {'MAXLEN', ARGV[5], id, 'f', frame, 't', ARGV[8], 'k', ARGV[7]}
local ok = redis.pcall('XADD', KEYS[2], unpack(entry))
if type(ok) == 'table' and ok.err then
  redis.call('DEL', KEYS[2])
  redis.call('XADD', KEYS[2], unpack(entry))
end
if ARGV[7] == 'delete' then
  redis.call('ZADD', KEYS[3], ms, ARGV[8])
  redis.call('DEL', KEYS[5], KEYS[6])
  -- Unread counts: a deleted message never counts.
  if ARGV[11] ~= '' then
    redis.call('ZREM', KEYS[7], ARGV[11])
    redis.call('ZADD', KEYS[8], ARGV[11], ARGV[11])
  end
end
-- A tombstone lives while its delete is in the window.
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
if first then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.match(first[1], '^(%d+)'))
end
redis.call(ARGV[12], ARGV[3], id .. ' ' .. frame)
return {1, id, frame}
"""


def frame_prefix(change: Change, user_id: str, username: str) -> str:
    """The change's broadcast frame without its closing fields: `message_id`
    names the message changed; the script adds a reaction's `on` and
    `reactions` (the message's counts after it), then `id` (the change's own
    stream id, the position a client resumes from) and `ts`."""
    frame: dict[str, Any] = {"type": change.kind, "room": change.room,
                             "message_id": change.target, "user": username,
                             "user_id": user_id}  # fmt: skip
    if change.kind == EDIT:
        frame["text"] = change.text
    elif change.kind == REACT:
        frame["emoji"] = change.emoji
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))[:-1]


def _script_call(
    settings: Settings,
    layout: Layout,
    change: Change,
    user_id: str,
    username: str,
    target: Target,
) -> tuple[list[str], list[str | int]]:
    room, message = change.room, change.target
    keys = [layout.room_stream_key(room), layout.window_key(room), layout.tombstones_key(room),
            layout.change_rate_key(room, user_id), layout.reactions_key(room, message),
            layout.reaction_counts_key(room, message),
            layout.own_messages_key(room, target.author),
            layout.deleted_numbers_key(room)]  # fmt: skip
    fields = change_fields(change.kind, room, user_id, username, message, change.text,
                           change.emoji, change.on)  # fmt: skip
    args: list[str | int] = [
        settings.rate_limit_changes,
        settings.rate_limit_changes_window_ms,
        layout.room_channel(room),
        frame_prefix(change, user_id, username),
        settings.resume_window,
        settings.max_backlog,
        change.kind,
        message,
        json.dumps([part for pair in fields.items() for part in pair], ensure_ascii=False),
        layout.reactions_key(room, ""),
        "" if target.n is None else target.n,
        "SPUBLISH" if layout.cluster else "PUBLISH",
    ]
    if change.kind == REACT:
        seed = target.stored_reactions
        args += [
            user_id,
            change.emoji,
            "1" if change.on else "0",
            settings.max_reactions_per_user,
            MAX_DISTINCT_REACTIONS,
            "" if seed is None else json.dumps(seed, ensure_ascii=False),
            SEEDED_REACTIONS_SECONDS,
        ]
    return keys, args


# Replies that answer the change (done, deleted, or nothing to do: perhaps an
# earlier try not yet replicated). Each wrote at least the rate counter, so
# with REDIS_REPLICA_ACKS the WAIT after it covers an earlier try too; a
# retry is safe (edits and deletes converge, reactions are explicit on/off).
_ANSWERED = (1, 4, 5)


def _outcome(change: Change, result: list[Any], settings: Settings) -> Outcome:
    match int(result[0]):
        case 1:
            return Accepted(id=str(result[1]), frame=str(result[2]))
        case 0:
            return RateLimited(retry_after_ms=max(int(result[1]), 1))
        case 3:
            return Backpressure(backlog=int(result[1]))
        case 4 if change.kind == DELETE:
            return Unchanged()
        case 4:
            raise ConflictError("The message is deleted", code="deleted")
        case 5:
            return Unchanged()
        case 6:
            raise ConflictError(
                f"At most {settings.max_reactions_per_user} reactions of yours on one message",
                code="too_many_reactions",
            )
    raise ConflictError(
        f"At most {MAX_DISTINCT_REACTIONS} different reactions on one message",
        code="too_many_reactions",
    )


class Changer:
    """Changes over the fan-out: Redis only. One per Redis client."""

    def __init__(
        self, client: redis.asyncio.Redis, settings: Settings, layout: Layout = SINGLE
    ) -> None:
        self._redis = client
        self._script = client.register_script(_CHANGE)
        self._settings = settings
        self._layout = layout

    async def change(
        self, change: Change, *, user_id: str, username: str, standing: Standing
    ) -> tuple[Outcome, Target]:
        """Check and make one change. Refusals raise: ForbiddenError,
        NotFoundError, ConflictError (`use_rest` when the window no longer
        holds the message, `deleted`, `too_many_reactions`)."""
        parse_id(change.target)
        if not standing.may_read:  # before the lookup: says nothing of the room's ids
            raise ForbiddenError("You may not write to this room")
        found = await lookup_async(self._redis, change.room, change.target, self._layout)
        if found is None:
            raise ConflictError(
                "This message is older than the live window; change it over REST", code="use_rest"
            )
        check_allowed(change, user_id, found, standing)
        settings = self._settings
        if change.kind == DELETE and found.deleted and not settings.redis_replica_acks:
            return Unchanged(), found
        keys, args = _script_call(settings, self._layout, change, user_id, username, found)
        result = await run_script_replicated(
            self._redis, self._script, keys, args, settings, wrote=_ANSWERED
        )
        return _outcome(change, result, settings), found


def change_over_rest(
    db: Database, client: redis.Redis, settings: Settings, change: Change, *, user_id: str,
    username: str, standing: Standing,
) -> tuple[Outcome, Target]:  # fmt: skip
    """The REST twin: the window first (a message not yet in MongoDB is
    there), then MongoDB for an older one."""
    parse_id(change.target)
    if not standing.may_read:  # before the lookup: says nothing of the room's ids
        raise ForbiddenError("You may not write to this room")
    layout = deployment_layout(settings)
    found = lookup(client, change.room, change.target, layout)
    if found is None:
        found = stored_target(db, change.room, change.target)
    check_allowed(change, user_id, found, standing)
    if change.kind == DELETE and found.deleted and not settings.redis_replica_acks:
        return Unchanged(), found
    keys, args = _script_call(settings, layout, change, user_id, username, found)
    result = run_script_replicated_sync(
        client, client.register_script(_CHANGE), keys, args, settings, wrote=_ANSWERED
    )
    return _outcome(change, result, settings), found


# -- the REST twins ------------------------------------------------------------------------


class EditRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    text: str


def over_rest(
    db: Database, client: redis.Redis, settings: Settings, claims: Claims, change: Change
) -> dict[str, Any]:
    """`PATCH` / `DELETE /api/rooms/{room}/messages/{id}` and `PUT` / `DELETE
    …/reactions/{emoji}`: 200 with the change's id, or `unchanged: true` and
    no id when there was nothing to do."""
    rooms.check_room(change.room)
    with redis_unavailable():
        standing = membership.standing(client, change.room, claims.user_id)
        if not standing.may_read:
            raise ForbiddenError("Not a member of this room")
        outcome, target = change_over_rest(
            db, client, settings, change, user_id=claims.user_id, username=claims.username,
            standing=standing,
        )  # fmt: skip
        match outcome:
            case Accepted(id=change_id):
                if change.kind == DELETE:
                    attachments.withdraw(client, change.room, target.attachment_urls)
                return {"id": change_id, "message_id": change.target}
            case Unchanged():
                return {"id": None, "message_id": change.target, "unchanged": True}
            case RateLimited(retry_after_ms=retry):
                raise RateLimitedError(retry, "Too many changes, retry later")
    raise UnavailableError("Not done: message storage is behind, retry later", code="backpressure")
