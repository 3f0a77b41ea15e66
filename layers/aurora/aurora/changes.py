"""Changing a sent message: edit (its author) and delete (its author, or a
room owner or admin), over the WebSocket (the fan-out) and REST alike.

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
messages' frames and their edits, so a deleted text is never replayed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pydantic

from aurora import attachments, membership, messages, rooms
from aurora.backends import redis_unavailable
from aurora.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
)
from aurora.keyspace import (
    STREAM_KEY,
    change_rate_key,
    room_channel,
    tombstones_key,
    window_key,
)
from aurora.sending import Accepted, Backpressure, RateLimited
from aurora.stream import change_fields, parse_id

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from pymongo.database import Database

    from aurora.membership import Standing
    from aurora.settings import Settings
    from aurora.tokens import Claims

EDIT, DELETE = "edit", "delete"


@dataclass(frozen=True)
class Unchanged:
    """Deleting a message already deleted: nothing to do, nothing queued."""


@dataclass(frozen=True)
class Target:
    """The message a change names, as Redis (or MongoDB) knows it."""

    author: str  # user id
    deleted: bool
    attachment_urls: tuple[str, ...] = ()


class UseRest(ConflictError):
    code = "use_rest"
    message = "This message is older than the live window; change it over REST"


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


def may_delete(user_id: str, target: Target, standing: Standing) -> bool:
    """The one delete rule: the author, or the room's owner or an admin.
    (Operators: `membership.may_moderate`, where it exists, is the hook
    point to add here, and only here.)"""
    if user_id == target.author:
        return True
    return standing.role in (membership.OWNER, membership.ADMIN)


def check_allowed(kind: str, user_id: str, target: Target, standing: Standing) -> None:
    """ForbiddenError or ConflictError unless `user_id` may make this change now."""
    if not standing.may_read:
        raise ForbiddenError("You may not write to this room")
    allowed = may_edit(user_id, target) if kind == EDIT else may_delete(user_id, target, standing)
    if not allowed:
        raise ForbiddenError(
            "Only the author edits a message"
            if kind == EDIT
            else "Only the author, the room's owner or an admin deletes a message"
        )
    if kind == EDIT and target.deleted:
        raise ConflictError("The message is deleted", code="deleted")


# -- finding the message in Redis ------------------------------------------------------


def _queue_lookup(pipe: Any, room: str, target: str) -> None:
    pipe.xrange(window_key(room), min=target, max=target)
    pipe.zscore(tombstones_key(room), target)
    pipe.xrange(window_key(room), count=1)


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
        return Target(frame["user_id"], deleted, urls)
    if first and parse_id(target) >= parse_id(first[0][0]):
        raise NotFoundError("No such message", code="not_found")
    return None


def lookup(client: redis.Redis, room: str, target: str) -> Target | None:
    pipe = client.pipeline(transaction=False)
    _queue_lookup(pipe, room, target)
    return _interpret(pipe.execute(), target)


async def lookup_async(client: redis.asyncio.Redis, room: str, target: str) -> Target | None:
    async with client.pipeline(transaction=False) as pipe:
        _queue_lookup(pipe, room, target)
        return _interpret(await pipe.execute(), target)


def stored_target(db: Database, room: str, target: str) -> Target:
    """The message as MongoDB has it (REST, for what the window no longer holds)."""
    doc = db[messages.COLLECTION].find_one(
        {"_id": messages.stored_key(room, target)}, {"user_id": 1, "deleted": 1, "attachments": 1}
    )
    if doc is None:
        raise NotFoundError("No such message", code="not_found")
    urls = tuple(a["url"] for a in doc.get("attachments") or ())
    return Target(doc["user_id"], bool(doc.get("deleted")), urls)


# -- the change script ---------------------------------------------------------------------

# KEYS: stream, room window, tombstones, change rate counter.
# ARGV: 1 limit, 2 rate window ms, 3 channel, 4 frame prefix, 5 resume window
#       length, 6 max backlog, 7 kind, 8 target id, then the entry's fields.
# Returns {1, id, frame} accepted, {0, retry_ms} rate limited, {3, backlog}
# backpressure, {4} the target is deleted (nothing written).
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
local fields = {}
for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
local ms = string.match(id, '^(%d+)')
local frame = ARGV[4] .. ',"id":"' .. id .. '","ts":' .. ms .. '}'
-- `t` (target) and `k` (kind) let resume drop the frames of a deleted message.
local entry = {'MAXLEN', ARGV[5], id, 'f', frame, 't', ARGV[8], 'k', ARGV[7]}
local ok = redis.pcall('XADD', KEYS[2], unpack(entry))
if type(ok) == 'table' and ok.err then
  redis.call('DEL', KEYS[2])
  redis.call('XADD', KEYS[2], unpack(entry))
end
if ARGV[7] == 'delete' then redis.call('ZADD', KEYS[3], ms, ARGV[8]) end
-- A tombstone lives while its delete is in the window.
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
if first then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.match(first[1], '^(%d+)'))
end
redis.call('PUBLISH', ARGV[3], id .. ' ' .. frame)
return {1, id, frame}
"""


def frame_prefix(kind: str, room: str, user_id: str, username: str, target: str,
                 text: str) -> str:  # fmt: skip
    """The change's broadcast frame without its closing `"id"` and `"ts"`:
    `message_id` names the message changed, `id` (added by the script) is the
    change's own stream id, the position a client resumes from."""
    frame: dict[str, Any] = {"type": kind, "room": room, "message_id": target,
                             "user": username, "user_id": user_id}  # fmt: skip
    if kind == EDIT:
        frame["text"] = text
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))[:-1]


def _script_call(
    settings: Settings, kind: str, room: str, user_id: str, username: str, target: str, text: str
) -> tuple[list[str], list[str | int]]:
    keys = [STREAM_KEY, window_key(room), tombstones_key(room), change_rate_key(room, user_id)]
    args: list[str | int] = [
        settings.rate_limit_changes,
        settings.rate_limit_changes_window_ms,
        room_channel(room),
        frame_prefix(kind, room, user_id, username, target, text),
        settings.resume_window,
        settings.max_backlog,
        kind,
        target,
    ]
    for name, value in change_fields(kind, room, user_id, username, target, text).items():
        args += [name, value]
    return keys, args


def _outcome(kind: str, result: list[Any]) -> Accepted | Unchanged | RateLimited | Backpressure:
    match int(result[0]):
        case 1:
            return Accepted(id=str(result[1]), frame=str(result[2]))
        case 0:
            return RateLimited(retry_after_ms=max(int(result[1]), 1))
        case 3:
            return Backpressure(backlog=int(result[1]))
    if kind == DELETE:
        return Unchanged()
    raise ConflictError("The message is deleted", code="deleted")


class Changer:
    """Changes over the fan-out: Redis only. One per Redis client."""

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self._redis = client
        self._script = client.register_script(_CHANGE)
        self._settings = settings

    async def change(
        self, *, kind: str, room: str, target: str, user_id: str, username: str,
        standing: Standing, text: str = "",
    ) -> tuple[Accepted | Unchanged | RateLimited | Backpressure, Target]:  # fmt: skip
        """Check and make one change; UseRest when the window no longer holds
        the message, NotFoundError, ForbiddenError, ConflictError (`deleted`)."""
        parse_id(target)
        found = await lookup_async(self._redis, room, target)
        if found is None:
            raise UseRest()
        check_allowed(kind, user_id, found, standing)
        if kind == DELETE and found.deleted:
            return Unchanged(), found
        keys, args = _script_call(self._settings, kind, room, user_id, username, target, text)
        return _outcome(kind, await self._script(keys=keys, args=args)), found


def change_over_rest(
    db: Database, client: redis.Redis, settings: Settings, *, kind: str, room: str,
    target: str, user_id: str, username: str, standing: Standing, text: str = "",
) -> tuple[Accepted | Unchanged | RateLimited | Backpressure, Target]:  # fmt: skip
    """The REST twin: the window first (a message not yet in MongoDB is
    there), then MongoDB for an older one."""
    parse_id(target)
    found = lookup(client, room, target)
    if found is None:
        found = stored_target(db, room, target)
    check_allowed(kind, user_id, found, standing)
    if kind == DELETE and found.deleted:
        return Unchanged(), found
    keys, args = _script_call(settings, kind, room, user_id, username, target, text)
    script = client.register_script(_CHANGE)
    return _outcome(kind, script(keys=keys, args=args)), found


# -- the REST twins ------------------------------------------------------------------------


class EditRequest(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    text: str


def over_rest(
    db: Database, client: redis.Redis, settings: Settings, claims: Claims, room: object,
    message_id: str, kind: str, text: str = "",
) -> dict[str, Any]:  # fmt: skip
    """`PATCH` / `DELETE /api/rooms/{room}/messages/{id}`: 200 with the
    change's id, or `unchanged: true` and no id when deleting a message
    already deleted."""
    room = rooms.check_room(room)
    if kind == EDIT:
        check_edit_text(text, settings.max_text_chars)
    with redis_unavailable():
        standing = membership.standing(client, room, claims.user_id)
        if not standing.may_read:
            raise ForbiddenError("Not a member of this room")
        outcome, target = change_over_rest(
            db, client, settings, kind=kind, room=room, target=message_id,
            user_id=claims.user_id, username=claims.username, standing=standing, text=text,
        )  # fmt: skip
        match outcome:
            case Accepted(id=change_id):
                if kind == DELETE:
                    attachments.withdraw(client, room, target.attachment_urls)
                return {"id": change_id, "message_id": message_id}
            case Unchanged():
                return {"id": None, "message_id": message_id, "unchanged": True}
            case RateLimited(retry_after_ms=retry):
                raise RateLimitedError(retry, "Too many changes, retry later")
    raise UnavailableError("Not done: message storage is behind, retry later", code="backpressure")
