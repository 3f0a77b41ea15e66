"""The caller's rooms newest activity first (`GET /api/rooms`): the user's
list of rooms, cached in Redis (below, "the user's list of rooms, cached"),
ordered by the mirrors of their rooms' activity; or, without that list, an
index range: each membership document carries its room's activity.

`activity` is a copy of `"<room's last>~<room>"` (`rooms.activity_key`, 41
characters, then the id): one string whose order is the listing's, (last,
room); the listing's cursor has the same form. A page is a range of
`{user_id, activity}` newest first on the index (`user_id`, `activity`):
never an `$in` of every room the user is in.

Who writes it (the room document's `last` stays the truth):
- the drain (`record_activity`): for each room a batch touched, after raising
  the room's `last` (in Redis's mirror of it, then in its document), when the
  room's last copy is COPY_LAG_MS or more behind it, one update of the room's
  memberships holding an older key, however many messages the batch had there;
- the drain's joins pass (`copy_current`), for the memberships just made;
- creating a room and opening a direct room, with the room's key; other new
  memberships (invitations, joins) start `UNCOPIED`, which the next copy fills.

Big rooms are read, not copied: a room of more than `COPY_MAX_MEMBERS`
members (the mirror's count) has its memberships' `activity` null, and the
listing reads those rooms' `last` when it lists them. So a drained batch
writes at most `COPY_MAX_MEMBERS` memberships per room it touched, and a
busy room's members once per COPY_LAG_MS each; a listing reads its page, the
copies within COPY_LAG_MS of its edge, and the caller's big rooms, and orders
them by their rooms' `last`, read from its mirror in Redis
(`keyspace.room_last_key`: one MGET, however many rooms were active at once),
and only the page's room documents from MongoDB. A membership with no copy
(`UNCOPIED`, or stored before this field: `migrations.copy_room_activity`)
is read the same way: always in its right place.

The mirror is raised before the room document and never lowered, so it is
never behind it; a room whose mirror is missing (expired, or a Redis that
lost its data) is read from its document, which refills the mirror.

Paging is by key, not offset: activity only rises, so a room that moves up
while someone pages is never listed twice (it moved above the cursor), and
the rooms that do not move are each listed once. The moved room is at the
top of a fresh first page, and its message reached the client live.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aurora import rooms
from aurora.backends import is_cluster, pipelined_script
from aurora.keyspace import (
    my_rooms_key,
    room_copied_key,
    room_last_key,
    room_members_key,
    rooms_floor_key,
)

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
# The mirror of a room's stored `last` (`keyspace.room_last_key`) lives this
# long after its last raise: one short string per room active in a day.
LAST_TTL_SECONDS = 86_400
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


# KEYS: 1 the room's mirror of its stored `last`, [2 its members, 3 its copied mark].
# ARGV: 1 a `last` now stored in the room's document, 2 the mirror's TTL (seconds).
# Raises the mirror to ARGV[1] unless it holds a newer one (compared as numbers:
# Lua compares strings by the server's locale); with KEYS 2 and 3 returns
# {the members' count, the copied mark or ""} for the drain's copy.
_RAISE_LAST = """
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am then return true end  -- not a key: replaced
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local held = redis.call('GET', KEYS[1])
if not held or older(held, ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if KEYS[2] then
  return {redis.call('HLEN', KEYS[2]), redis.call('GET', KEYS[3]) or ''}
end
return 0
"""


_KEY = re.compile(r"\d{20}-\d{20}")


def activity_of(last: str, room: str) -> str:
    """A membership's `activity` (and a listing cursor) from its room's `last`."""
    return f"{last}~{room}"


# -- writing: the drain, and memberships being made ---------------------------------


def record_activity(
    db: Database, client: redis.Redis, stored: list[dict[str, Any]], *,
    max_members: int = COPY_MAX_MEMBERS,
) -> None:  # fmt: skip
    """After a batch's messages are inserted: raise each room's mirror of its
    `last` (`keyspace.room_last_key`) to its newest of them, then the room
    documents' `last` (`rooms.raise_last`), then copy each room's key
    into its memberships that hold an older one, when the last copy
    (`keyspace.room_copied_key`) is COPY_LAG_MS or more behind it: at most
    one statement per room, none for a room with no members or a fresh copy.
    A room of more than `max_members` members gets null instead, once (read
    when listed). Redis first: the mirror names messages already stored, and
    is never behind the room document, which the listing relies on.
    Idempotent, and safe beside another drain: no key replaces a newer one."""
    from pymongo import UpdateMany

    newest = rooms.newest_keys(stored)
    if not newest:
        return
    calls = [([room_last_key(room), room_members_key(room), room_copied_key(room)],
              [last, str(LAST_TTL_SECONDS)]) for room, last in newest.items()]  # fmt: skip
    replies = pipelined_script(client, _RAISE_LAST, calls)
    rooms.raise_last(db, newest)
    updates, marks = [], {}
    for (room, last), (size, copied) in zip(newest.items(), replies, strict=True):
        copied = copied or None
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


# -- the user's list of rooms, cached ------------------------------------------------
# Which rooms a user is in changes far more rarely than their order: the list
# (room, role, copy) is kept in Redis (`keyspace.my_rooms_key`) as the last
# full read of the user's memberships found it, and dropped by every change
# to it (`lists_changed`, after MongoDB's write and before the notice that
# tells the user's clients to read their rooms again). A listing then reads
# no membership: the rooms' `last` from their mirrors orders it (one MGET),
# and only rooms without a mirror, quiet for a day, whose copies come within
# COPY_LAG_MS of the page's edge are read from their documents.

MY_ROOMS_TTL_SECONDS = 600

# KEYS: the user's cached list. ARGV: its lifetime (s).
_LIST_CHANGED = """
redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HDEL', KEYS[1], 'rows')
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 0
"""

# KEYS: the user's cached list. ARGV: the version read before the memberships
# were, the rows (JSON), the lifetime (s). Kept only if no change came since.
_KEEP_LIST = """
if (redis.call('HGET', KEYS[1], 'v') or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rows', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def lists_changed(client: redis.Redis, user_ids: Iterable[str]) -> None:
    """These users' lists of rooms changed in MongoDB (a room joined or left,
    a role changed): their cached lists are out of date. Redis errors
    propagate: the caller's change is retried, as its notice would be."""
    calls = [([my_rooms_key(user_id)], [str(MY_ROOMS_TTL_SECONDS)]) for user_id in set(user_ids)]
    if calls:
        pipelined_script(client, _LIST_CHANGED, calls)


def my_rooms(
    db: Database, client: redis.Redis | None, user_id: str, max_time_ms: int
) -> list[list[Any]] | None:
    """The user's rooms as [room, role, copied activity]: the cached list, or
    else every membership of the user read from MongoDB in one reply and
    cached for the next listings, unless a change came in between (the
    version is read first). None without Redis, or past MAX_LISTED rooms
    (which is cached too)."""
    if client is None:
        return None
    from redis.exceptions import RedisError

    key = my_rooms_key(user_id)
    try:
        version, cached = client.hmget(key, ["v", "rows"])
    except RedisError:
        return None
    if cached is not None:
        return json.loads(cached)
    found = (
        db[rooms.MEMBERSHIPS]
        .find({"user_id": user_id}, _ROW, limit=MAX_LISTED + 1, batch_size=MAX_LISTED + 1)
        .max_time_ms(max_time_ms)
    )
    mine: list[list[Any]] | None = [[row["room"], row["role"], row.get("activity")]
                                    for row in found]  # fmt: skip
    if len(mine) > MAX_LISTED:
        mine = None  # kept as such (JSON null): the next listings go straight to the memberships
    with contextlib.suppress(RedisError):
        client.eval(_KEEP_LIST, 1, key, version or "0", json.dumps(mine), MY_ROOMS_TTL_SECONDS)
    return mine


def _placed(
    db: Database, client: redis.Redis | None, mine: list[list[Any]], before: str | None,
    limit: int, max_time_ms: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """The cached list's rooms below `before`, newest first, keyed by their
    rooms' `last`: the mirror's, else the room document's where it can
    matter (no copy, or a copy within COPY_LAG_MS of the page's edge or of
    `before`), else the copy, which is at most COPY_LAG_MS behind it: far
    enough below the edge that the page is the same."""
    rows = [{"room": room, "role": role, "copied": copied} for room, role, copied in mine]
    names = [row["room"] for row in rows]
    lasts = dict(zip(names, _mirrored(client, names), strict=True))
    unmirrored = [row for row in rows if lasts[row["room"]] is None]

    def provisional(row: dict[str, Any]) -> str:
        """Exact where mirrored; elsewhere the copy, at most COPY_LAG_MS low."""
        last = lasts[row["room"]]
        if last is None:
            return row["copied"] or UNCOPIED
        return max(activity_of(last, row["room"]), row["copied"] or UNCOPIED)

    keys = (provisional(row) for row in rows)
    below = sorted((key for key in keys if key and (before is None or key < before)), reverse=True)
    reach = [lagging(below[limit])] if len(below) > limit else []
    if before is not None:
        reach.append(lagging(before))
    low = min(reach) if reach else None

    def unsure(copied: str | None) -> bool:
        if not copied:
            return True
        return low is not None and low <= copied and (before is None or copied < before)

    read = [row["room"] for row in unmirrored if unsure(row["copied"])]
    lasts |= _stored_lasts(db, client, read, max_time_ms)
    for row in unmirrored:
        if lasts[row["room"]] is None and row["copied"]:
            lasts[row["room"]] = row["copied"].partition("~")[0]
    return _keyed(rows, lasts, before)


# -- reading -------------------------------------------------------------------------
# A copy lags its room by less than COPY_LAG_MS, so a room's real key is
# within that of its copy: the rows whose copies reach down to the page's
# edge less the lag hold the page. Their rooms' `last` orders them, read from
# Redis's mirror (one MGET for them all), not from their room documents
# (SecantusDB's `$in` costs the square of its ids): only the page's rooms
# are read from MongoDB, for what the page shows.


def page(
    db: Database, client: redis.Redis | None, user_id: str, *, before: str | None,
    limit: int, max_time_ms: int,
) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
    """(up to `limit` of the user's rooms below `before`, newest activity
    first, each `{room, role, activity, doc}` with its room document; the
    next page's cursor or None)."""
    mine = my_rooms(db, client, user_id, max_time_ms)
    if mine is not None:
        rows = _placed(db, client, mine, before, limit, max_time_ms)
    else:
        rows = _from_memberships(db, client, user_id, before, limit, max_time_ms)
    rows = _with_rooms(db, client, rows, before, limit, max_time_ms)
    more = len(rows) > limit
    return rows[:limit], rows[limit - 1]["activity"] if more else None


def _from_memberships(
    db: Database, client: redis.Redis | None, user_id: str, before: str | None, limit: int,
    max_time_ms: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """Without the cached list: the memberships that hold the page, read by
    their copies (and the floor hint), ordered by their rooms' `last`."""
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
    rows = _ordered(db, client, copied + uncopied, before, max_time_ms)
    if edge is not None and sum(row["activity"] >= edge for row in rows) <= limit:
        # Copies lagging across the cursor left too few: read all below it.
        everything = _copied(db, user_id, UNCOPIED, before, 0, max_time_ms)
        rows = _ordered(db, client, everything + uncopied, before, max_time_ms)
    return rows


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
    if before is None:
        # No hint: every copy, in one read, which places the hint. SecantusDB
        # fetches every match before a limit, so a page's read and then the
        # lag's below it would cost two such reads; MongoDB reads the whole
        # list once per user per FLOOR_TTL_SECONDS.
        rows = _copied(db, user_id, UNCOPIED, None, 0, max_time_ms)
        if len(rows) <= limit:
            return rows, None
        edge = rows[limit]["copied"]
        low = lagging(edge)
        held = sum(row["copied"] >= low for row in rows)  # the lag's window below the edge
        return rows[: max(held, FLOOR_DEPTH + 1)], edge  # and what places the hint
    rows = _copied(db, user_id, UNCOPIED, before, limit + 1, max_time_ms)
    if len(rows) <= limit:
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
    # All of them are sorted here: SecantusDB's sort costs more than Python's.
    # In one reply: by default the first holds 101 rows and a second the rest.
    order = {"sort": [("activity", -1)], "limit": wanted} if wanted else {"batch_size": MAX_LISTED}
    found = (
        db[rooms.MEMBERSHIPS]
        .find({"user_id": user_id, "activity": bounds}, _ROW, **order)
        .max_time_ms(max_time_ms)
    )
    rows = [row | {"copied": row["activity"]} for row in found]
    return rows if wanted else sorted(rows, key=lambda row: row["copied"], reverse=True)


def _ordered(
    db: Database, client: redis.Redis | None, rows: list[dict[str, Any]], before: str | None,
    max_time_ms: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """These memberships keyed by their room's stored `last` (the mirror's,
    or the room document's where the mirror has none), below `before`,
    newest first (a room with neither is not listed)."""
    names = sorted({row["room"] for row in rows})
    lasts = dict(zip(names, _mirrored(client, names), strict=True))
    missing = [room for room, last in lasts.items() if last is None]
    lasts |= _stored_lasts(db, client, missing, max_time_ms)
    return _keyed(rows, lasts, before)


def _stored_lasts(
    db: Database, client: redis.Redis | None, names: list[str], max_time_ms: int
) -> dict[str, str]:
    """These rooms' `last` read from their documents (rooms with none are
    left out), and their mirrors raised to it."""
    if not names:
        return {}
    found = rooms.by_ids(db, names, {"last": 1}, max_time_ms=max_time_ms)
    read = {d["_id"]: d.get("last", rooms.NO_ACTIVITY) for d in found}
    raise_mirrors(client, read)
    return read


def _keyed(
    rows: list[dict[str, Any]], lasts: dict[str, str | None], before: str | None
) -> list[dict[str, Any]]:
    """These memberships keyed by their rooms' `last` ({room: last}), below
    `before`, newest first; a room with none is not listed."""
    placed = []
    for row in rows:
        last = lasts.get(row["room"])
        if last is None:
            continue
        # The copy is never newer than the room, unless the mirror was lost
        # and came back older: the newer of the two.
        mirrored = activity_of(last, row["room"])
        key = max(mirrored, row.get("copied") or UNCOPIED)
        if before is None or key < before:
            placed.append({"room": row["room"], "role": row["role"], "activity": key,
                           "mirrored": mirrored})  # fmt: skip
    placed.sort(key=lambda row: row["activity"], reverse=True)
    return placed


def _with_rooms(
    db: Database, client: redis.Redis | None, rows: list[dict[str, Any]], before: str | None,
    limit: int, max_time_ms: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """The first `limit` + 1 of these ordered rows with their room documents
    (rows whose room has none are skipped, and the next read instead), each
    showing the `last` it is placed by. The mirror is raised before the room
    document, so it is the newer one but for a Redis that lost writes: then
    the document places its room, and raises the mirror before the page is
    answered, so that no later page places the room lower than this one."""
    placed: list[dict[str, Any]] = []
    start = 0
    while len(placed) <= limit and start < len(rows):
        chunk = rows[start : start + limit + 1 - len(placed)]
        start += len(chunk)
        docs = {d["_id"]: d for d in rooms.by_ids(db, [row["room"] for row in chunk],
                                                  max_time_ms=max_time_ms)}  # fmt: skip
        newer = {}
        for row in chunk:
            doc = docs.get(row["room"])
            if doc is None:
                continue
            stored = activity_of(doc.get("last", rooms.NO_ACTIVITY), row["room"])
            if stored > row["mirrored"]:  # the mirror was lost and came back older
                newer[row["room"]] = doc.get("last", rooms.NO_ACTIVITY)
            if stored >= row["activity"]:
                row = row | {"activity": stored}
            else:  # a drain between its two writes
                last = row["activity"].partition("~")[0]
                doc = doc | {"last": last, "last_ts": int(last.partition("-")[0])}
            if before is None or row["activity"] < before:  # else it moved above the cursor
                placed.append(row | {"doc": doc})
        raise_mirrors(client, newer)
    placed.sort(key=lambda row: row["activity"], reverse=True)
    return placed


def _mirrored(client: redis.Redis | None, names: list[str]) -> list[str | None]:
    """Each room's mirrored `last`, None where there is none (or no Redis)."""
    if client is None or not names:
        return [None] * len(names)
    from redis.exceptions import RedisError

    keys = [room_last_key(room) for room in names]
    try:  # one MGET (a cluster: one per slot, pipelined): ~10x faster than GETs here
        found = client.mget_nonatomic(keys) if is_cluster(client) else client.mget(keys)
    except RedisError:  # the room documents then: slower, not wrong
        return [None] * len(names)
    # Anything but a key (`rooms.activity_key`) is read from the room instead.
    return [last if last and _KEY.fullmatch(last) else None for last in found]


def raise_mirrors(client: redis.Redis | None, lasts: dict[str, str]) -> None:
    """Raise these rooms' mirrors of their `last` ({room: last}) to these
    values, where they hold older ones or none."""
    if client is None or not lasts:
        return
    from redis.exceptions import RedisError

    calls = [([room_last_key(room)], [last, str(LAST_TTL_SECONDS)])
             for room, last in lasts.items()]  # fmt: skip
    with contextlib.suppress(RedisError):
        pipelined_script(client, _RAISE_LAST, calls)


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
