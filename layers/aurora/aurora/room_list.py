"""The caller's rooms newest activity first (`GET /api/rooms`), read as an
index range: each membership document carries its room's activity.

`activity` is a copy of `"<room's last>~<room>"` (`rooms.activity_key`, 41
characters, then the id): one string whose order is the listing's, (last,
room); the listing's cursor has the same form. A page is a range of
`{user_id, activity}` newest first on the index (`user_id`, `activity`):
never an `$in` of every room the user is in.

Who writes it (the room document's `last` stays the truth):
- the drain (`copy_activity`): for each room a batch touched, after raising
  the room's `last`, when the room's last copy is COPY_LAG_MS or more behind
  it, one update of the room's memberships holding an older key, however
  many messages the batch had there;
- the drain's joins pass (`copy_current`), for the memberships just made;
- creating a room and opening a direct room, with the room's key; other new
  memberships (invitations, joins) start `UNCOPIED`, which the next copy fills.

Big rooms are read, not copied: a room of more than `COPY_MAX_MEMBERS`
members (the mirror's count) has its memberships' `activity` null, and the
listing reads those rooms' `last` when it lists them. So a drained batch
writes at most `COPY_MAX_MEMBERS` memberships per room it touched, and a
busy room's members once per COPY_LAG_MS each; a listing reads its page, the
copies within COPY_LAG_MS of its edge, and the caller's big rooms, and orders
them by their rooms' `last`. A membership with no copy (`UNCOPIED`, or stored
before this field: `migrations.copy_room_activity`) is read the same way:
always in its right place, only slower.

Paging is by key, not offset: activity only rises, so a room that moves up
while someone pages is never listed twice (it moved above the cursor), and
the rooms that do not move are each listed once. The moved room is at the
top of a fresh first page, and its message reached the client live.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aurora import rooms
from aurora.keyspace import room_copied_key, room_members_key, rooms_floor_key

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

# Rooms whose every membership the drain updates when they have a message;
# bigger rooms are read when listed (the write cost of one room per batch).
COPY_MAX_MEMBERS = 200
# A copy is rewritten only once it lags its room by this much (message
# time): a busy room costs its members one write each per this, not per batch.
COPY_LAG_MS = 5_000
COPIED_MARK_TTL_SECONDS = 86_400
_BIG = "big"  # the copied mark of a room read when listed
# Memberships read per listing at most; a user in more rooms sees the most
# recently active ones.
MAX_LISTED = 10_000
# The floor hint sits this deep in the caller's list: the largest page.
FLOOR_DEPTH = 100
FLOOR_TTL_SECONDS = 86_400
_ROW = {"_id": 0, "room": 1, "role": 1, "activity": 1}
# A new membership's `activity` until the drain copies its room's key into
# it (sorts below every key, so that copy matches it): read through its room.
UNCOPIED = ""


def activity_of(last: str, room: str) -> str:
    """A membership's `activity` (and a listing cursor) from its room's `last`."""
    return f"{last}~{room}"


# -- writing: the drain, and memberships being made ---------------------------------


def copy_activity(
    db: Database, client: redis.Redis, newest: dict[str, str], *,
    max_members: int = COPY_MAX_MEMBERS,
) -> None:  # fmt: skip
    """Copy each room's key ({room: last}) into its memberships that hold an
    older one, when the last copy (`keyspace.room_copied_key`) is COPY_LAG_MS
    or more behind it: at most one statement per room, none for a room with
    no members or a fresh copy. A room of more than `max_members` members
    gets null instead, once (read when listed). Idempotent, and safe beside
    another drain: a key never replaces a newer one."""
    from pymongo import UpdateMany

    if not newest:
        return
    pipe = client.pipeline(transaction=False)
    for room in newest:
        pipe.hlen(room_members_key(room))
        pipe.get(room_copied_key(room))
    replies = pipe.execute()
    updates, marks = [], {}
    for (room, last), size, copied in zip(newest.items(), replies[::2], replies[1::2],
                                          strict=True):  # fmt: skip
        if size > max_members:
            if copied != _BIG:
                # Only copies match ($gt ""): read when listed from now on.
                updates.append(UpdateMany({"room": room, "activity": {"$gt": UNCOPIED}},
                                          {"$set": {"activity": None}}))  # fmt: skip
                marks[room] = _BIG
        elif size and (copied in (None, _BIG) or copied < lagging(last)):
            key = activity_of(last, room)
            updates.append(UpdateMany({"room": room, "activity": {"$lt": key}},
                                      {"$set": {"activity": key}}))  # fmt: skip
            marks[room] = last
    if not updates:
        return
    db[rooms.MEMBERSHIPS].bulk_write(updates, ordered=False)
    pipe = client.pipeline(transaction=False)
    for room, mark in marks.items():  # after the copy: a mark never claims one not made
        pipe.set(room_copied_key(room), mark, ex=COPIED_MARK_TTL_SECONDS)
    pipe.execute()


def copy_current(db: Database, client: redis.Redis, joined: set[str]) -> None:
    """Give memberships just made (`UNCOPIED`) in these rooms their room's
    stored key, whatever the last copy: a quiet room may have no next one."""
    from pymongo import UpdateMany

    found = rooms.by_ids(db, sorted(joined), {"last": 1})
    updates = [UpdateMany({"room": d["_id"], "activity": UNCOPIED},
                          {"$set": {"activity": activity_of(d.get("last", rooms.NO_ACTIVITY),
                                                            d["_id"])}})
               for d in found]  # fmt: skip
    if updates:
        db[rooms.MEMBERSHIPS].bulk_write(updates, ordered=False)


# -- reading -------------------------------------------------------------------------
# A copy lags its room by less than COPY_LAG_MS, so a room's real key is
# within that of its copy: the rows whose copies reach down to the page's
# edge less the lag hold the page, which their rooms' `last` then orders.


def page(
    db: Database, client: redis.Redis | None, user_id: str, *, before: str | None,
    limit: int, max_time_ms: int,
) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """(up to `limit` of the user's rooms below `before`, newest activity
    first, each `{room, role, activity, doc}` with its room document; the
    next page's cursor or None)."""
    floor = _floor(client, user_id) if before is None else None
    window = _window(db, user_id, before, floor, limit, max_time_ms)
    if window is None:  # rooms left since the hint was kept: it no longer holds a page
        floor = None
        window = _window(db, user_id, before, None, limit, max_time_ms)
    copied, edge = window
    if before is None:
        _keep_floor(client, user_id, copied, floor)
    uncopied = list(
        db[rooms.MEMBERSHIPS]
        .find({"user_id": user_id, "activity": {"$in": [None, UNCOPIED]}}, _ROW,
              limit=MAX_LISTED)
        .max_time_ms(max_time_ms)
    )  # fmt: skip
    rows = _placed(db, copied + uncopied, before, max_time_ms)
    if edge is not None and sum(row["activity"] >= edge for row in rows) <= limit:
        # Copies lagging across the cursor left too few: read all below it.
        everything = _copied(db, user_id, UNCOPIED, before, 0, max_time_ms)
        rows = _placed(db, everything + uncopied, before, max_time_ms)
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1]["activity"] if more else None


def lagging(key: str) -> str:
    """The lowest key a copy of `key` may hold (COPY_LAG_MS older)."""
    return rooms.activity_key(max(int(key[:20]) - COPY_LAG_MS, 0), 0)


def _window(
    db: Database, user_id: str, before: str | None, floor: str | None, limit: int,
    max_time_ms: int,
) -> tuple[list[dict[str, Any]], str | None] | None:  # fmt: skip
    """(memberships with a copy that hold the page, newest copy first; the
    edge: a key that at least a page and one more reach, or None when these
    are all below `before`). None when the floor no longer holds a page."""
    if floor is not None:
        rows = _copied(db, user_id, lagging(floor), before, 0, max_time_ms)
        if sum(row["copied"] >= floor for row in rows) <= limit:
            return None
        return rows, floor
    wanted = (max(limit, FLOOR_DEPTH) if before is None else limit) + 1
    rows = _copied(db, user_id, UNCOPIED, before, wanted, max_time_ms)
    if len(rows) < wanted:
        return rows, None
    edge = rows[limit]["copied"]
    if rows[-1]["copied"] > lagging(edge):
        rows += _copied(db, user_id, lagging(edge), rows[-1]["copied"], 0, max_time_ms)
    return rows, edge


def _copied(
    db: Database, user_id: str, low: str, high: str | None, wanted: int, max_time_ms: int
) -> list[dict[str, Any]]:
    """Memberships whose copy is in [low, high) (above UNCOPIED when `low`
    is it: nulls and UNCOPIED are read through their rooms), newest first;
    `wanted` of them, or all (0)."""
    bounds = {"$gt": low} if low == UNCOPIED else {"$gte": low}
    if high is not None:
        bounds["$lt"] = high
    found = (
        db[rooms.MEMBERSHIPS]
        .find({"user_id": user_id, "activity": bounds}, _ROW, sort=[("activity", -1)],
              limit=wanted)
        .max_time_ms(max_time_ms)
    )  # fmt: skip
    return [row | {"copied": row["activity"]} for row in found]


def _placed(
    db: Database, rows: list[dict[str, Any]], before: str | None, max_time_ms: int
) -> list[dict[str, Any]]:
    """These memberships with their room documents, keyed by their room's
    `last`, below `before`, newest first (a room without a document is not
    listed)."""
    docs = {d["_id"]: d for d in rooms.by_ids(db, sorted({r["room"] for r in rows}),
                                              max_time_ms=max_time_ms)}  # fmt: skip
    placed = []
    for row in rows:
        doc = docs.get(row["room"])
        if doc is None:
            continue
        key = activity_of(doc.get("last", rooms.NO_ACTIVITY), row["room"])
        if before is None or key < before:
            placed.append({"room": row["room"], "role": row["role"], "activity": key, "doc": doc})
    placed.sort(key=lambda row: row["activity"], reverse=True)
    return placed


# -- the first page's floor --------------------------------------------------------
# The first page is the top of the user's list: any key known to lie at or
# below it bounds the range to read. A key never falls (activity only rises),
# so once FLOOR_DEPTH + 1 rooms held a key at or above the floor they still
# do, unless the user left some: a read that finds fewer than a page and one
# more goes again without it. So the floor is only ever a hint: MongoDB would
# stop at the page on its own (a limit on an index walk), but an engine that
# fetches every match before the limit (SecantusDB, the embedded store) reads
# the floor's range, not all the user's rooms.


def _floor(client: redis.Redis | None, user_id: str) -> str | None:
    if client is None:
        return None
    from redis.exceptions import RedisError

    try:
        return client.get(rooms_floor_key(user_id))
    except RedisError:  # a hint: without it the read is slower, not wrong
        return None


def _keep_floor(
    client: redis.Redis | None, user_id: str, copied: list[dict[str, Any]], used: str | None
) -> None:
    """Place the floor FLOOR_DEPTH rooms down when there was none, or when
    the range above it has grown to twice that."""
    if client is None or len(copied) <= FLOOR_DEPTH:
        return
    if used is not None and len(copied) <= 2 * (FLOOR_DEPTH + 1):
        return
    from redis.exceptions import RedisError

    with contextlib.suppress(RedisError):
        client.set(rooms_floor_key(user_id), copied[FLOOR_DEPTH]["copied"],
                   ex=FLOOR_TTL_SECONDS)  # fmt: skip
