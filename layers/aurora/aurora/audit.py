"""The audit log: every moderation and room-administration action (who, what,
when, which room, which target), in MongoDB's `audit` collection, paged
newest first for operators (`GET /api/audit`).

An entry is written after the change it records is in MongoDB, so the log
never shows what did not happen; a failure to write it is an error of the
request (503), never silence. Pages follow `_id` (ObjectIds order by
creation second, then by process and counter): a total order, so walking
the pages returns each entry once, whatever is appended meanwhile.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aurora import messages, operators, rooms
from aurora.errors import ForbiddenError, ValidationError

if TYPE_CHECKING:
    from pymongo.database import Database

    from aurora.stream import ChangeEntry
    from aurora.tokens import Claims

COLLECTION = rooms.AUDIT  # its index: `rooms.ensure_indexes`
# What an entry's `action` may say: rooms and their members, bans, messages.
ACTIONS = (
    "room.create", "room.change", "room.delete", "member.put", "member.remove",
    "ban.put", "ban.delete", "message.delete",
)  # fmt: skip
_CURSOR = re.compile(r"[0-9a-f]{24}", re.ASCII)


def record(
    db: Database,
    claims: Claims,
    action: str,
    room: str,
    *,
    target: tuple[str, str] | None = None,
    **detail: object,
) -> None:
    """Append one entry: `claims` did `action` in `room` to `target`
    (user id, username), with `detail` (e.g. the new role)."""
    assert action in ACTIONS, action
    entry: dict[str, Any] = {
        "at": datetime.now(UTC),
        "actor": {"user": claims.username, "user_id": claims.user_id},
        "operator": operators.is_operator(claims),
        "action": action,
        "room": room,
    }
    if target is not None:
        entry["target"] = {"user_id": target[0], "user": target[1]}
    if detail:
        entry["detail"] = detail
    db[COLLECTION].insert_one(entry)


def record_message_deletes(db: Database, deletes: list[ChangeEntry]) -> None:
    """Log the deletes of others' messages (moderation) among `deletes`, which
    the drain has just applied: a delete travels the message path (the
    fan-out never writes MongoDB), so this is where it is first in the
    database, whichever way it was made. An entry's `_id` is derived from the
    delete's stream id (its second, then a digest): a replayed batch writes
    nothing twice, and pages keep their time order."""
    from bson import ObjectId
    from pymongo.errors import BulkWriteError

    by_key = {messages.stored_key(d.room, d.target): d for d in deletes}
    if not by_key:
        return
    authors = db[messages.COLLECTION].find(
        {"_id": {"$in": list(by_key)}}, {"user_id": 1, "username": 1}
    )
    rows = []
    for doc in authors:
        delete = by_key[doc["_id"]]
        if doc["user_id"] == delete.user_id:
            continue  # the author's own delete is not moderation
        digest = hashlib.blake2b(f"{delete.room}/{delete.id}".encode(), digest_size=8).digest()
        rows.append({
            "_id": ObjectId((delete.ts // 1000).to_bytes(4, "big") + digest),
            "at": datetime.fromtimestamp(delete.ts / 1000, tz=UTC),
            "actor": {"user": delete.username, "user_id": delete.user_id},
            "operator": operators.is_operator(delete.user_id),
            "action": "message.delete",
            "room": delete.room,
            "target": {"user_id": doc["user_id"], "user": doc["username"]},
            "detail": {"message_id": delete.target},
        })  # fmt: skip
    if not rows:
        return
    try:
        db[COLLECTION].insert_many(rows, ordered=False)
    except BulkWriteError as exc:  # logged by a run that crashed before its ack
        if any(e.get("code") != messages.DUPLICATE_KEY for e in exc.details["writeErrors"]):
            raise


def page(
    db: Database,
    claims: Claims,
    *,
    room: str | None,
    cursor: str | None,
    limit: int,
    max_time_ms: int,
) -> dict[str, Any]:
    """Operators only: entries newest first, `{"entries", "next_cursor"}`."""
    from bson import ObjectId

    if not operators.is_operator(claims):
        raise ForbiddenError("Only operators may read the audit log")
    query: dict[str, Any] = {}
    if room is not None:
        query["room"] = rooms.check_room(room)
    if cursor is not None:
        if not _CURSOR.fullmatch(cursor):
            raise ValidationError("Invalid cursor", code="invalid_cursor")
        query["_id"] = {"$lt": ObjectId(cursor)}
    found = list(
        db[COLLECTION].find(query, sort=[("_id", -1)], limit=limit + 1).max_time_ms(max_time_ms)
    )
    more, found = len(found) > limit, found[:limit]
    entries = [_view(doc) for doc in found]
    return {"entries": entries, "next_cursor": str(found[-1]["_id"]) if more else None}


def _view(doc: dict[str, Any]) -> dict[str, Any]:
    view = {
        "id": str(doc["_id"]),
        "at": doc["at"].replace(tzinfo=UTC).isoformat(),
        "actor": doc["actor"],
        "operator": doc.get("operator", False),
        "action": doc["action"],
        "room": doc["room"],
        "target": doc.get("target"),
    }
    if doc.get("detail"):
        view["detail"] = doc["detail"]
    return view
