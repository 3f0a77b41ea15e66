"""Rebuilding the unread counts' state in Redis from MongoDB, for a Redis that
lost its data or was replaced (`scripts/rebuild_redis.py`).

What `aurora.receipts` counts with lives in Redis only: each room's message
counter, its deleted numbers, every reader's read and delivered cursors, and
each user's own numbers after their read cursor. MongoDB has what they are
made of: the stored messages (`n`, author, `deleted`) and the cursors the
drain keeps (`cursors`). The rebuild, room by room:

1. raises every room's counter to its newest stored number, first and for
   all rooms (one indexed query each), so that new sends number after what
   is stored as soon as possible;
2. moves each reader's cursors forward to the stored ones;
3. adds the deleted numbers, and each author's numbers after their read
   cursor that are not deleted.

Every write only adds or moves forward, in one script per (room, user), so
it is idempotent and safe while traffic flows:
- a counter is never lowered, a cursor never moved back;
- an own number is added only if, at that instant, it is after the user's
  read cursor and not among the deleted numbers; the change script removes a
  deleted message's own number and records it deleted in one step, so a
  delete made during the rebuild is never counted twice;
- a number the read script would have trimmed (the user read further
  meanwhile) is below the cursor, where the count never looks.

The one race it cannot undo: messages sent between the loss and step 1
took numbers from a counter that started again at 1, numbers stored
messages already have. Until step 1 raises the counter, each such message
can make a count off by one; run the rebuild before reopening traffic, or
at once after the Redis comes back.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aurora import messages, receipts, rooms
from aurora.keyspace import Layout

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

# Numbers per script call: bounds one call's arguments and the time Redis
# spends in it, whatever the size of a room.
CHUNK = 2000

# KEYS: 1 the room's counter. ARGV: 1 its newest stored number.
# Returns 1 if the counter was raised, 0 if it was there or beyond.
_RAISE_COUNTER = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

# KEYS: 1 read cursors, 2 delivered cursors, 3 the user's own numbers, 4 the
#       room's deleted numbers.
# ARGV: 1 user id, 2 stored read cursor "<n> <id>" or "", 3 stored delivered
#       cursor or "", 4 JSON [deleted numbers of the user's messages], 5 JSON
#       [numbers of the user's messages not deleted when they were read].
# Returns the number of own numbers added.
_REBUILD_USER = """
local function forward(key, value)
  if value == '' then return end
  local current = redis.call('HGET', KEYS[key], ARGV[1])
  local number = tonumber(string.match(value, '^(%d+)'))
  if (not current) or tonumber(string.match(current, '^(%d+)')) < number then
    redis.call('HSET', KEYS[key], ARGV[1], value)
  end
end
forward(1, ARGV[2])
forward(2, ARGV[3])
local cursor = tonumber(string.match(redis.call('HGET', KEYS[1], ARGV[1]) or '0', '^(%d+)'))
for _, n in ipairs(cjson.decode(ARGV[4])) do
  redis.call('ZADD', KEYS[4], n, n)
  redis.call('ZREM', KEYS[3], n)
end
local added = 0
for _, n in ipairs(cjson.decode(ARGV[5])) do
  if n > cursor and not redis.call('ZSCORE', KEYS[4], n) then
    added = added + redis.call('ZADD', KEYS[3], n, n)
  end
end
return added
"""


@dataclass
class Recounted:
    """What one rebuild did."""

    rooms: int = 0
    counters_raised: int = 0
    cursors: int = 0  # (room, user) pairs whose stored cursors were offered
    deleted: int = 0  # deleted numbers written
    own: int = 0  # own numbers added


def rebuild_counts(db: Database, client: redis.Redis, layout: Layout) -> Recounted:
    """Rebuild every room's unread state in Redis from MongoDB (module docstring)."""
    done = Recounted()
    raise_counter = client.register_script(_RAISE_COUNTER)
    names = _rooms(db)
    for room in names:  # step 1, for every room before the slow part
        newest = _newest_number(db, room)
        done.counters_raised += int(raise_counter(keys=[layout.room_counter_key(room)],
                                                  args=[newest]))  # fmt: skip
    rebuild_user = client.register_script(_REBUILD_USER)
    for room in names:
        _rebuild_room(db, rebuild_user, layout, room, done)
        done.rooms += 1
    return done


def _rebuild_room(
    db: Database, rebuild_user: Any, layout: Layout, room: str, done: Recounted
) -> None:
    """Steps 2 and 3 for one room: one script call per reader or author (more
    for one with over CHUNK numbers)."""
    cursors = _stored_cursors(db, room)
    deleted, own = _numbers(db, room, {user: c[0] for user, c in cursors.items()})
    for user in set(cursors) | set(deleted) | set(own):
        keys = [layout.cursors_key(room, receipts.READ),
                layout.cursors_key(room, receipts.DELIVERED),
                layout.own_messages_key(room, user), layout.deleted_numbers_key(room)]  # fmt: skip
        read, delivered = cursors.get(user, (0, "", ""))[1:]
        for gone, kept in _chunks(deleted.get(user, []), own.get(user, [])):
            args = [user, read, delivered, json.dumps(gone), json.dumps(kept)]
            done.own += int(rebuild_user(keys=keys, args=args))
            done.deleted += len(gone)
            read = delivered = ""  # offered once
        done.cursors += user in cursors


def _rooms(db: Database) -> list[str]:
    """Every room with stored messages (the drain records each one's newest)
    or stored cursors."""
    names = {
        doc["_id"] for doc in db[rooms.COLLECTION].find({"last": {"$exists": True}}, {"_id": 1})
    }
    names |= {doc["room"] for doc in db[receipts.CURSORS].find({}, {"room": 1})}
    return sorted(names)


def _newest_number(db: Database, room: str) -> int:
    """The number of the room's newest stored message (0: none numbered)."""
    newest = db[messages.COLLECTION].find_one(
        {"room": room, "n": {"$ne": None}}, {"n": 1}, sort=[("ms", -1), ("seq", -1)]
    )
    return int(newest["n"]) if newest else 0


def _stored_cursors(db: Database, room: str) -> dict[str, tuple[int, str, str]]:
    """{user id: (read number, read cursor, delivered cursor)} as Redis keeps
    cursors ("<n> <message id>", "" for none)."""
    found = {}
    for doc in db[receipts.CURSORS].find({"room": room}, {"user_id": 1, "read": 1, "delivered": 1}):
        read, delivered = _as_redis(doc.get("read")), _as_redis(doc.get("delivered"))
        found[doc["user_id"]] = (int(read.split(" ", 1)[0]) if read else 0, read, delivered)
    return found


def _as_redis(stored: str | None) -> str:
    """A cursor as MongoDB keeps it ("<zero-padded n> <id>") as Redis does."""
    if not stored:
        return ""
    number, message_id = stored.split(" ", 1)
    return f"{int(number)} {message_id}"


def _numbers(
    db: Database, room: str, read: dict[str, int]
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """The room's deleted numbers by author, and each author's numbers after
    their stored read cursor that are not deleted: one pass over the room's
    stored messages."""
    deleted: dict[str, list[int]] = defaultdict(list)
    own: dict[str, list[int]] = defaultdict(list)
    query = {"room": room, "n": {"$ne": None}}
    for doc in db[messages.COLLECTION].find(query, {"n": 1, "user_id": 1, "deleted": 1}):
        number, author = int(doc["n"]), doc["user_id"]
        if doc.get("deleted"):
            deleted[author].append(number)
        elif number > read.get(author, 0):
            own[author].append(number)
    return deleted, own


def _chunks(gone: list[int], kept: list[int]) -> Iterator[tuple[list[int], list[int]]]:
    """The deleted numbers, then the kept ones, in slices of at most CHUNK;
    at least one (empty) slice, which still carries the cursors."""
    yield from ((gone[i : i + CHUNK], []) for i in range(0, len(gone), CHUNK))
    yield from (([], kept[i : i + CHUNK]) for i in range(0, len(kept), CHUNK))
    if not gone and not kept:
        yield [], []
