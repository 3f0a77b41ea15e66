"""Rooms: the one rule for a room id; the `rooms` collection (each room's
recent activity, which the drain keeps, and for a created room its
visibility, title, owner and deletion); the `memberships` and `bans`
collections. Who may do what with them is `aurora.room_admin`.

A room id also names Redis keys and channels (`aurora.keyspace`), so the
fan-out and the REST functions accept the same short, safe alphabet.

Activity is recorded per room per drained batch with `$max` of the newest
message's key, so a redelivered batch or two overlapping drains leave the
same document (no counters: a redelivery would double them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aurora.errors import ValidationError
from aurora.messages import DUPLICATE_KEY

if TYPE_CHECKING:
    from pymongo.database import Database

ROOM_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
ROOM_RULE = "1-64 of A-Z a-z 0-9 _ . : -"
_ROOM = re.compile(ROOM_PATTERN)

COLLECTION = "rooms"
MEMBERSHIPS = "memberships"
BANS = "bans"
# Moderation and room administration, newest first (`aurora.audit`).
AUDIT = "audit"
# The room every client of the original protocol is in: open to all, always.
DEFAULT_ROOM = "general"
# Prefix of direct-message rooms: nobody may create or join one by its id.
RESERVED_PREFIX = "dm:"
# Stream ids have two unsigned 64-bit parts (at most 20 digits each): padded
# to 20 digits, "<ms>-<seq>" strings sort the way the ids do, so one `$max`
# keeps the newest id (separate `$max`es of ms and seq would mix two ids).
_WIDTH = 20


def check_room(room: object) -> str:
    """`room` if it is a valid room id, else ValidationError `bad_room`."""
    # fullmatch: `$` alone would also accept a trailing newline.
    if not isinstance(room, str) or not _ROOM.fullmatch(room):
        raise ValidationError(f"Room must be {ROOM_RULE}", code="bad_room")
    return room


def direct_room(first: str, second: str) -> str:
    """The id of the direct room of two users: the same whoever asks, in the
    reserved prefix, within the room id rule (a digest of the sorted ids)."""
    pair = "\0".join(sorted((first, second)))
    return RESERVED_PREFIX + hashlib.sha256(pair.encode()).hexdigest()[:40]


def ensure_indexes(db: Database) -> None:
    db[COLLECTION].create_index([("last", -1)], name="last_activity", background=True)
    for name in (MEMBERSHIPS, BANS):
        db[name].create_index(
            [("room", 1), ("user_id", 1)], unique=True, name="room_user", background=True
        )
    db[MEMBERSHIPS].create_index([("user_id", 1)], name="by_user", background=True)
    # A user's rooms newest first (walked backwards), and a room's copies to
    # update (`aurora.room_list`). Ascending: SecantusDB 0.7 misses documents
    # in ranges over a descending compound key; MongoDB walks either way.
    db[MEMBERSHIPS].create_index(
        [("user_id", 1), ("activity", 1)], name="user_activity", background=True
    )
    db[MEMBERSHIPS].create_index(
        [("room", 1), ("activity", 1)], name="room_activity", background=True
    )
    # Newest first overall is `_id` itself; one room's entries, this.
    db[AUDIT].create_index([("room", 1), ("_id", -1)], name="room_newest", background=True)


# A room with no stored message yet: sorts after every room that has one.
NO_ACTIVITY = f"{0:0{_WIDTH}d}-{0:0{_WIDTH}d}"


def view(doc: dict[str, Any] | None, room: str, role: str | None) -> dict[str, Any]:
    """A room as `GET /api/rooms` and the room routes show it."""
    doc = doc or {}
    last = doc.get("last")
    active = last is not None and last != NO_ACTIVITY
    return {
        "room": room,
        "visibility": doc.get("visibility", "public"),
        "title": doc.get("title"),
        "role": role,
        "last_id": _message_id(last) if active else None,
        "last_ts": doc.get("last_ts") if active else None,
    }


def activity_key(ms: int, seq: int) -> str:
    """The sortable form of a message id stored as a room's `last`."""
    return f"{ms:0{_WIDTH}d}-{seq:0{_WIDTH}d}"


def newest_keys(docs: Iterable[dict[str, Any]]) -> dict[str, str]:
    """{room: the key of its newest message among these documents}."""
    newest: dict[str, tuple[int, int]] = {}
    for doc in docs:
        key = (doc["ms"], doc["seq"])
        if key > newest.get(doc["room"], (-1, -1)):
            newest[doc["room"]] = key
    return {room: activity_key(ms, seq) for room, (ms, seq) in newest.items()}


def record_activity(db: Database, docs: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Raise each room's `last` to its newest message among these stored
    documents; returns {room: that key}."""
    keys = newest_keys(docs)
    raise_last(db, keys)
    return keys


def raise_last(db: Database, keys: dict[str, str]) -> None:
    """Raise each room's `last` to its key ({room: key}) unless it holds a
    newer one. Idempotent, and safe to run concurrently; raises on failure
    (the drain then leaves the batch unacknowledged, to be redone)."""
    from pymongo import UpdateOne
    from pymongo.errors import BulkWriteError

    if not keys:
        return
    updates = [
        UpdateOne({"_id": room}, {"$max": {"last": key, "last_ts": int(key[:_WIDTH])}},
                  upsert=True)
        for room, key in keys.items()
    ]  # fmt: skip
    try:
        db[COLLECTION].bulk_write(updates, ordered=False)
    except BulkWriteError as exc:
        # Two drains upserting a new room at once: one insert loses with a
        # duplicate key; the document exists now, so the update applies.
        errors = exc.details.get("writeErrors", [])
        if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        db[COLLECTION].bulk_write([updates[e["index"]] for e in errors], ordered=False)


# Ids per query in `by_ids`: SecantusDB matches each document against the
# whole `$in` list, so a long list costs its square.
_IDS_PER_QUERY = 25


def by_ids(
    db: Database, ids: list[str], projection: dict[str, Any] | None = None, *,
    max_time_ms: int = 0,
) -> list[dict[str, Any]]:  # fmt: skip
    """The room documents of these ids that exist (in no particular order)."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), _IDS_PER_QUERY):
        cursor = db[COLLECTION].find({"_id": {"$in": ids[start : start + _IDS_PER_QUERY]}},
                                     projection)  # fmt: skip
        found += cursor.max_time_ms(max_time_ms) if max_time_ms else cursor
    return found


def recent(db: Database, limit: int, *, max_time_ms: int) -> list[dict[str, Any]]:
    """Every room by most recent stored message: [{room, last_id, last_ts}]
    (operators' view; users list their own rooms through `room_admin.listing`)."""
    found = (
        db[COLLECTION]
        .find({"last": {"$gt": NO_ACTIVITY}}, sort=[("last", -1)], limit=limit)
        .max_time_ms(max_time_ms)
    )
    return [
        {"room": doc["_id"], "last_id": _message_id(doc["last"]), "last_ts": doc["last_ts"]}
        for doc in found
    ]


def _message_id(key: str) -> str:
    ms, seq = key.split("-")
    return f"{int(ms)}-{int(seq)}"


def record_joins(db: Database, joins: dict[tuple[str, str], str]) -> None:
    """Memberships made by joining public rooms ({(room, user_id): username}):
    upserted as members (an existing role stays), each room with a document.
    Idempotent; raises on failure (the drain then retries the entries)."""
    from pymongo import UpdateOne

    if not joins:
        return
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    members = [
        UpdateOne(
            {"room": room, "user_id": user_id},
            # activity "": not yet copied (`aurora.room_list`, which fills it).
            {
                "$setOnInsert": {
                    "role": "member",
                    "username": username,
                    "joined_at": now,
                    "activity": "",
                }
            },
            upsert=True,
        )
        for (room, user_id), username in joins.items()
    ]
    places = [
        UpdateOne({"_id": room}, {"$setOnInsert": {"last": NO_ACTIVITY, "last_ts": 0}}, upsert=True)
        for room in {room for room, _ in joins}
    ]
    _upsert_all(db[MEMBERSHIPS], members)
    _upsert_all(db[COLLECTION], places)


def _upsert_all(collection: Any, updates: list[Any]) -> None:
    """bulk_write of upserts; two writers upserting one new document at once
    make one insert lose with a duplicate key: the document exists now, so
    that update is simply applied again."""
    from pymongo.errors import BulkWriteError

    try:
        collection.bulk_write(updates, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        collection.bulk_write([updates[e["index"]] for e in errors], ordered=False)
