"""Upgrades of stored data, each idempotent: run it again, or after a crash
half way, and it finishes the job without doing anything twice.

`rekey_messages`: message documents stored with the stream id alone as
`_id` get `_id = messages.stored_key(room, id)` and the stream id in `id`
(docs/architecture.md, "The message document").

`copy_room_activity`: memberships stored before they carried their room's
activity get it (`aurora.room_list`), so the listing reads them by index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aurora import messages, room_list, rooms

if TYPE_CHECKING:
    from pymongo.database import Database


def rekey_messages(db: Database, *, batch_size: int = 500) -> int:
    """Re-key every message document that has no `id` field; returns how many.

    Per batch: insert the re-keyed copies (a copy already there, from a run
    that crashed before its delete or from a drain that stored the entry
    again under the new key, is a duplicate and is left as it is), then
    delete the originals. A crash between the two leaves both, which the
    next run resolves the same way.
    """
    from pymongo.errors import BulkWriteError

    collection = db[messages.COLLECTION]
    moved = 0
    while True:
        old = list(collection.find({"id": {"$exists": False}}, limit=batch_size))
        if not old:
            return moved
        copies = [
            doc | {"_id": messages.stored_key(doc["room"], doc["_id"]), "id": doc["_id"]}
            for doc in old
        ]
        try:
            collection.insert_many(copies, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != messages.DUPLICATE_KEY for e in errors):
                raise
        collection.delete_many({"_id": {"$in": [doc["_id"] for doc in old]}})
        moved += len(old)


def copy_room_activity(
    db: Database, *, max_members: int = room_list.COPY_MAX_MEMBERS, batch_size: int = 500
) -> int:
    """Give every membership of each room of at most `max_members` members
    its room's activity (where it has none or an older one), and clear it in
    bigger rooms, which are read when listed; returns how many rooms were
    copied. Until it has run, the listing reads those memberships through
    their rooms: right, only slower. The drain keeps them from then on."""
    from pymongo import UpdateMany

    memberships = db[rooms.MEMBERSHIPS]
    sizes = {group["_id"]: group["n"] for group in memberships.aggregate(
        [{"$group": {"_id": "$room", "n": {"$sum": 1}}}])}  # fmt: skip
    copied, updates = 0, []
    for doc in db[rooms.COLLECTION].find({}, {"last": 1}):
        room, size = doc["_id"], sizes.get(doc["_id"], 0)
        if size == 0:
            continue
        if size > max_members:
            updates.append(UpdateMany({"room": room, "activity": {"$gt": ""}},
                                      {"$set": {"activity": None}}))  # fmt: skip
        else:
            key = room_list.activity_of(doc.get("last", rooms.NO_ACTIVITY), room)
            updates += [
                UpdateMany({"room": room, "activity": None}, {"$set": {"activity": key}}),
                UpdateMany({"room": room, "activity": {"$lt": key}}, {"$set": {"activity": key}}),
            ]
            copied += 1
        if len(updates) >= batch_size:
            memberships.bulk_write(updates, ordered=False)
            updates = []
    if updates:
        memberships.bulk_write(updates, ordered=False)
    return copied
