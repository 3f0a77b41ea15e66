"""The message document in MongoDB and the broadcast frame clients receive.

`_id` is `stored_key(room, id)`: the stream id is unique within its partition
only (two partitions can hand out the same `<ms>-<seq>`), and a room lives in
one partition, so room + id is unique and a re-delivered entry is still a
duplicate key, never a second document; and a message is found by the pair
clients name it by. The id itself is kept in `id`.
Stream ids do not sort as strings ("…-10" < "…-9"), so each document also
carries `ms` and `seq` as integers, and history is read in (`room`, `ms`,
`seq`) order through one compound index.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aurora.stream import SCHEMA_VERSION, StreamEntry, parse_id

if TYPE_CHECKING:
    from pymongo.database import Database

COLLECTION = "messages"
# MongoDB's error code for a unique-index violation, as bulk write reports give it.
DUPLICATE_KEY = 11000
STATUS_SENT = "sent"


def stored_key(room: str, message_id: str) -> str:
    """The `_id` of a stored message. "/" is outside the room id rule, so the
    room part ends unambiguously at the first one."""
    return f"{room}/{message_id}"


def ensure_indexes(db: Database) -> None:
    db[COLLECTION].create_index(
        [("room", 1), ("ms", -1), ("seq", -1)], name="room_time", background=True
    )


def document(entry: StreamEntry) -> dict[str, Any]:
    """The stored form of one accepted message."""
    ms, seq = parse_id(entry.id)
    return {
        "_id": stored_key(entry.room, entry.id),
        "id": entry.id,
        "ms": ms,
        "seq": seq,
        "room": entry.room,
        "user_id": entry.user_id,
        "username": entry.username,
        "text": entry.text,
        "created_at": datetime.fromtimestamp(ms / 1000, tz=UTC),
        "status": STATUS_SENT,  # sent | delivered | read
        "attachments": [dict(a) for a in entry.attachments],
        "client_id": entry.client_id,
        "edited_at": None,
        "deleted": False,
        "n": entry.n,  # its number in the room (`aurora.receipts`), None before numbers existed
        "reactions": [],  # [{emoji, users: [user ids]}] (`aurora.message_state`)
        "rev": 0,  # raised by every change written (`aurora.message_state`)
        "v": int(SCHEMA_VERSION),
    }


def frame_fields(
    room: str,
    user_id: str,
    username: str,
    text: str,
    attachments: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The `message` frame's fields without `id` and `ts`: one definition for
    the broadcast (`frame_prefix`) and for history pages (`from_document`)."""
    frame: dict[str, Any] = {
        "type": "message", "room": room, "user": username, "user_id": user_id, "text": text,
    }  # fmt: skip
    if attachments:
        frame["attachments"] = [dict(a) for a in attachments]
    return frame


def frame_prefix(
    room: str,
    user_id: str,
    username: str,
    text: str,
    attachments: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The broadcast frame without its closing `"id"` and `"ts"`.

    The send script appends `,"id":"<stream id>","ts":<ms>}` once Redis has
    assigned the id, so each message is JSON-encoded exactly once, here. Old
    clients read `user`, `text` and `ts`; new ones also `type`, `id`, `room`
    and, when the message carries any, `attachments`.
    """
    frame = frame_fields(room, user_id, username, text, attachments)
    body = json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
    return body[:-1]


def from_document(doc: Mapping[str, Any], viewer: str | None = None) -> dict[str, Any]:
    """A stored message as the `message` frame clients received live, with
    its current state: `edited_at`, or `deleted`, and `reactions`
    [{emoji, count, me}] (`me`: whether `viewer` is among them) when any."""
    frame = frame_fields(
        doc["room"], doc["user_id"], doc["username"], doc["text"], doc.get("attachments") or ()
    )
    # A document stored before `id` existed has the stream id as `_id`
    # (`aurora.migrations.rekey_messages` moves it; until then it reads the same).
    frame |= {"id": doc.get("id", doc["_id"]), "ts": doc["ms"]}
    if doc.get("client_id"):  # as the broadcast: only when the send had one
        frame["client_id"] = doc["client_id"]
    if doc.get("deleted"):
        frame["deleted"] = True
        return frame
    if doc.get("edited_at") is not None:
        frame["edited_at"] = int(doc["edited_at"].replace(tzinfo=UTC).timestamp() * 1000)
    if doc.get("reactions"):
        frame["reactions"] = [
            {"emoji": r["emoji"], "count": len(r["users"]), "me": viewer in r["users"]}
            for r in sorted(doc["reactions"], key=lambda r: r["emoji"])
        ]
    return frame
