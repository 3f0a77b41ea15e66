"""The persistence stream: the one seam between the fan-out tier (producer)
and the drain (consumer).

Every accepted message is one entry of the Redis stream
`aurora.keyspace.STREAM_KEY`. The entry id Redis assigns ("<ms>-<seq>") *is*
the message id everywhere: in the broadcast frame, in MongoDB (`_id`) and in
resume requests. Only the drain trims the stream, and never past the oldest
entry not yet acknowledged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aurora import untrusted_json
from aurora.errors import ValidationError

GROUP = "ingest"  # the drain's consumer group
SCHEMA_VERSION = "1"  # a message
CHANGE_SCHEMA_VERSION = "2"  # a change to a message (a drain that knows only "1" dead-letters it)

# Entry fields, schema version 1. All values are strings (Redis stores bytes).
#   v         schema version ("1")
#   room      room id
#   user_id   sender's user id
#   username  sender's username at send time
#   text      message text
FIELDS_V1 = ("v", "room", "user_id", "username", "text")
# Optional fields, still schema version 1 (an entry without one is valid, so
# entries queued before the field existed stay valid):
#   attachments  JSON array of {url, file_type, size, filename}, each checked
#                against the stored object before the message was accepted;
#                absent when the message carries none
#   client_id    the sender's idempotency id (1-64 characters), absent when
#                the send had none: stored, so a client can tell from history
#                that a send it never saw acknowledged was stored
#   n            the message's number in its room (1, 2, … in order, from the
#                room's counter): unread counts are differences of these
#                (`aurora.receipts`); absent on entries queued before it existed
OPTIONAL_FIELDS_V1 = ("attachments", "client_id", "n")
MAX_CLIENT_ID_CHARS = 64  # the fan-out's `client_id` rule is this one too


def is_client_id(value: object) -> bool:
    """A client_id as the send path accepts it: a string of 1-64 characters."""
    return isinstance(value, str) and 1 <= len(value) <= MAX_CLIENT_ID_CHARS


# MongoDB refuses documents over 16 MiB; an entry this large can never be
# stored (the send path allows far less), so it is poison, not a retry.
MAX_ENTRY_BYTES = 15 * 1024 * 1024

_ID = re.compile(r"(\d{1,20})-(\d{1,20})", re.ASCII)
_NUMBER = re.compile(r"[1-9][0-9]{0,15}", re.ASCII)
# Each part of a stream id is an unsigned 64-bit integer in Redis.
MAX_ID_PART = 2**64 - 1


def parse_id(message_id: str) -> tuple[int, int]:
    """(milliseconds, sequence) of a stream id; sorts the way Redis does.
    ValidationError `invalid_id` for anything Redis would not accept as one."""
    match = _ID.fullmatch(message_id) if isinstance(message_id, str) else None
    if not match or max(ms_seq := (int(match.group(1)), int(match.group(2)))) > MAX_ID_PART:
        raise ValidationError(f"Invalid message id: {str(message_id)[:50]!r}", code="invalid_id")
    return ms_seq


def next_id(message_id: str) -> str:
    """The smallest stream id greater than `message_id` (the last id has none)."""
    ms, seq = parse_id(message_id)
    if seq < MAX_ID_PART:
        return f"{ms}-{seq + 1}"
    if ms < MAX_ID_PART:
        return f"{ms + 1}-0"
    raise ValidationError("No stream id is greater than the last one", code="invalid_id")


@dataclass(frozen=True)
class StreamEntry:
    id: str
    room: str
    user_id: str
    username: str
    text: str
    attachments: tuple[dict[str, Any], ...] = ()
    client_id: str | None = None
    n: int | None = None  # the message's number in its room

    @property
    def ts(self) -> int:
        """Creation time in epoch milliseconds (the ms part of the id)."""
        return parse_id(self.id)[0]

    def fields(self) -> dict[str, str]:
        fields = entry_fields(
            self.room, self.user_id, self.username, self.text, self.attachments, self.client_id
        )
        return fields if self.n is None else fields | {"n": str(self.n)}

    @classmethod
    def from_redis(cls, entry_id: str, fields: dict[str, Any] | None) -> StreamEntry:
        """Parse one entry; ValidationError (a poison entry) if it is not schema v1."""
        parse_id(entry_id)
        if not fields:
            raise ValidationError("Entry has no fields (deleted?)", code="empty_entry")
        if fields.get("v") != SCHEMA_VERSION:
            raise ValidationError(f"Unknown schema version {fields.get('v')!r}", code="bad_version")
        missing = [name for name in FIELDS_V1 if not isinstance(fields.get(name), str)]
        if missing:
            raise ValidationError(f"Missing fields: {', '.join(missing)}", code="missing_fields")
        attachments = _parse_attachments(fields.get("attachments"))
        client_id = fields.get("client_id")
        if client_id is not None and not is_client_id(client_id):
            raise ValidationError("Field client_id is not 1-64 characters", code="bad_client_id")
        number = fields.get("n")
        if number is not None and not (isinstance(number, str) and _NUMBER.fullmatch(number)):
            raise ValidationError("Field n is not a message number", code="bad_number")
        present = [name for name in OPTIONAL_FIELDS_V1 if name in fields]
        size = 0
        for name in (*FIELDS_V1, *present):
            try:
                size += len(fields[name].encode("utf-8"))
            except UnicodeEncodeError:  # raw bytes that were not UTF-8 (surrogateescape)
                raise ValidationError(
                    f"Field {name} is not valid UTF-8", code="invalid_encoding"
                ) from None
        if size > MAX_ENTRY_BYTES:
            raise ValidationError(
                f"Entry of {size} bytes is larger than a stored message can be", code="too_large"
            )
        return cls(
            id=entry_id,
            room=fields["room"],
            user_id=fields["user_id"],
            username=fields["username"],
            text=fields["text"],
            attachments=attachments,
            client_id=client_id,
            n=None if number is None else int(number),
        )


# Change entries, schema version 2 (`aurora.changes`):
#   v         "2"
#   kind      edit | delete | react | read | delivered
#   room      room id
#   user_id   who made the change
#   username  their username at the time
#   target    the stream id of the message changed
#   text      the new text (edit only)
#   emoji     the reaction (react only; `aurora.emoji`)
#   on        "1" added, "0" removed (react only)
#   n         the message's number in the room (read and delivered only:
#             a cursor moved to `target`, `aurora.receipts`)
CHANGE_KINDS = ("edit", "delete", "react", "read", "delivered")
CURSOR_KINDS = ("read", "delivered")
FIELDS_V2 = ("v", "kind", "room", "user_id", "username", "target")


@dataclass(frozen=True)
class ChangeEntry:
    id: str
    kind: str
    room: str
    user_id: str
    username: str
    target: str
    text: str = ""
    emoji: str = ""
    on: bool = True
    n: int | None = None  # read, delivered: the cursor's message number

    @property
    def ts(self) -> int:
        return parse_id(self.id)[0]

    def fields(self) -> dict[str, str]:
        fields = change_fields(self.kind, self.room, self.user_id, self.username, self.target,
                               self.text, self.emoji, self.on)  # fmt: skip
        return fields if self.n is None else fields | {"n": str(self.n)}

    @classmethod
    def from_redis(cls, entry_id: str, fields: dict[str, Any]) -> ChangeEntry:
        """Parse one schema v2 entry; ValidationError (a poison entry) if malformed."""
        parse_id(entry_id)
        missing = [name for name in FIELDS_V2 if not isinstance(fields.get(name), str)]
        if missing:
            raise ValidationError(f"Missing fields: {', '.join(missing)}", code="missing_fields")
        kind, target = fields["kind"], fields["target"]
        if kind not in CHANGE_KINDS:
            raise ValidationError(f"Unknown change {kind[:20]!r}", code="bad_kind")
        parse_id(target)
        if parse_id(target) >= parse_id(entry_id):
            raise ValidationError("A change is newer than its message", code="bad_target")
        text = fields.get("text", "")
        if kind == "edit" and not isinstance(text, str):
            raise ValidationError("Field text is missing", code="missing_fields")
        emoji, on = fields.get("emoji", ""), fields.get("on")
        if kind == "react" and (not isinstance(emoji, str) or not emoji or on not in ("0", "1")):
            raise ValidationError("Fields emoji and on are missing", code="missing_fields")
        number = fields.get("n")
        if kind in CURSOR_KINDS and not (isinstance(number, str) and _NUMBER.fullmatch(number)):
            raise ValidationError("Field n is not a message number", code="bad_number")
        try:
            size = sum(len(str(value).encode("utf-8")) for value in fields.values())
        except UnicodeEncodeError:
            raise ValidationError("A field is not valid UTF-8", code="invalid_encoding") from None
        if size > MAX_ENTRY_BYTES:
            raise ValidationError(f"Entry of {size} bytes is too large", code="too_large")
        return cls(entry_id, kind, fields["room"], fields["user_id"], fields["username"], target,
                   text if kind == "edit" else "", emoji if kind == "react" else "",
                   on != "0", int(number) if kind in CURSOR_KINDS else None)  # fmt: skip


def parse_entry(entry_id: str, fields: dict[str, Any] | None) -> StreamEntry | ChangeEntry:
    """A message (schema v1) or a change (v2); ValidationError for anything else."""
    if fields and fields.get("v") == CHANGE_SCHEMA_VERSION:
        return ChangeEntry.from_redis(entry_id, fields)
    return StreamEntry.from_redis(entry_id, fields)


def change_fields(
    kind: str, room: str, user_id: str, username: str, target: str, text: str = "",
    emoji: str = "", on: bool = True,
) -> dict[str, str]:  # fmt: skip
    """The fields of one change entry; `text` only for an edit, `emoji` and
    `on` only for a reaction."""
    fields = {"v": CHANGE_SCHEMA_VERSION, "kind": kind, "room": room, "user_id": user_id,
              "username": username, "target": target}  # fmt: skip
    if kind == "edit":
        fields["text"] = text
    elif kind == "react":
        fields |= {"emoji": emoji, "on": "1" if on else "0"}
    return fields


def entry_fields(
    room: str,
    user_id: str,
    username: str,
    text: str,
    attachments: tuple[dict[str, Any], ...] | list[dict[str, Any]] = (),
    client_id: str | None = None,
) -> dict[str, str]:
    """The fields of one entry; `attachments` and `client_id` only when given."""
    fields = {"v": SCHEMA_VERSION, "room": room, "user_id": user_id, "username": username,
              "text": text}  # fmt: skip
    if attachments:
        fields["attachments"] = json.dumps(
            list(attachments), ensure_ascii=False, separators=(",", ":")
        )
    if client_id is not None:
        fields["client_id"] = client_id
    return fields


def _parse_attachments(raw: str | None) -> tuple[dict[str, Any], ...]:
    """The entry's attachments, re-checked for shape: only the metadata fields
    (`aurora.attachments.Attachment`) reach the database (no operator keys, no
    extra data)."""
    if raw is None:
        return ()
    # Imported here: most entries carry no attachments, and pydantic would
    # add to every drain cold start.
    from aurora.attachments import Attachment

    try:
        if not isinstance(raw, str):
            raise ValueError("not a string")
        items = untrusted_json.loads(raw)
        if not isinstance(items, list) or not items:
            raise ValueError("not a non-empty list")
        return tuple(Attachment.model_validate(item).model_dump() for item in items)
    except ValueError as exc:  # pydantic's errors are ValueErrors too
        raise ValidationError(
            f"Field attachments is not a list of attachments: {str(exc)[:200]}",
            code="bad_attachments",
        ) from None
