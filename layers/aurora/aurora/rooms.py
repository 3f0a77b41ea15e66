"""Rooms: the one rule for a room id, and the `rooms` collection of recent
activity that the drain keeps and `GET /api/rooms` reads.

A room id also names Redis keys and channels (`aurora.keyspace`), so the
fan-out and the REST functions accept the same short, safe alphabet.

Activity is recorded per room per drained batch with `$max` of the newest
message's key, so a redelivered batch or two overlapping drains leave the
same document (no counters: a redelivery would double them).
"""

from __future__ import annotations

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


def ensure_indexes(db: Database) -> None:
    db[COLLECTION].create_index([("last", -1)], name="last_activity", background=True)


def activity_key(ms: int, seq: int) -> str:
    """The sortable form of a message id stored as a room's `last`."""
    return f"{ms:0{_WIDTH}d}-{seq:0{_WIDTH}d}"


def record_activity(db: Database, docs: Iterable[dict[str, Any]]) -> None:
    """Raise each room's `last` to its newest message among these stored
    documents. Idempotent, and safe to run concurrently; raises on failure
    (the drain then leaves the batch unacknowledged, to be redone)."""
    from pymongo import UpdateOne
    from pymongo.errors import BulkWriteError

    newest: dict[str, tuple[int, int]] = {}
    for doc in docs:
        key = (doc["ms"], doc["seq"])
        if key > newest.get(doc["room"], (-1, -1)):
            newest[doc["room"]] = key
    if not newest:
        return
    updates = [
        UpdateOne(
            {"_id": room},
            {"$max": {"last": activity_key(ms, seq), "last_ts": ms}},
            upsert=True,
        )
        for room, (ms, seq) in newest.items()
    ]
    try:
        db[COLLECTION].bulk_write(updates, ordered=False)
    except BulkWriteError as exc:
        # Two drains upserting a new room at once: one insert loses with a
        # duplicate key; the document exists now, so the update applies.
        errors = exc.details.get("writeErrors", [])
        if not errors or any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        db[COLLECTION].bulk_write([updates[e["index"]] for e in errors], ordered=False)


def recent(db: Database, limit: int, *, max_time_ms: int) -> list[dict[str, Any]]:
    """Rooms by most recent activity: [{room, last_id, last_ts}]."""
    found = db[COLLECTION].find({}, sort=[("last", -1)], limit=limit).max_time_ms(max_time_ms)
    return [
        {"room": doc["_id"], "last_id": _message_id(doc["last"]), "last_ts": doc["last_ts"]}
        for doc in found
    ]


def _message_id(key: str) -> str:
    ms, seq = key.split("-")
    return f"{int(ms)}-{int(seq)}"
