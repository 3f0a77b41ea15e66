"""Upgrades of stored data, each idempotent: run it again, or after a crash
half way, and it finishes the job without doing anything twice.

`rekey_messages`: message documents stored with the stream id alone as
`_id` get `_id = messages.stored_key(room, id)` and the stream id in `id`
(docs/architecture.md, "The message document").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aurora import messages

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
