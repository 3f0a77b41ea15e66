"""The persistence stream: the one seam between the fan-out tier (producer)
and the drain (consumer).

Every accepted message is one entry of the Redis stream `STREAM_KEY`. The
entry id Redis assigns ("<ms>-<seq>") *is* the message id everywhere: in the
broadcast frame, in MongoDB (`_id`) and in resume requests. Only the drain
trims the stream, and never past the oldest entry not yet acknowledged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aurora.errors import ValidationError

STREAM_KEY = "aurora:messages"
DEAD_LETTER_KEY = "aurora:messages:dead"
GROUP = "ingest"
SCHEMA_VERSION = "1"

# Entry fields, schema version 1. All values are strings (Redis stores bytes).
#   v         schema version ("1")
#   room      room id
#   user_id   sender's user id
#   username  sender's username at send time
#   text      message text
FIELDS_V1 = ("v", "room", "user_id", "username", "text")

# MongoDB refuses documents over 16 MiB; an entry this large can never be
# stored (the send path allows far less), so it is poison, not a retry.
MAX_ENTRY_BYTES = 15 * 1024 * 1024

_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")


def parse_id(message_id: str) -> tuple[int, int]:
    """(milliseconds, sequence) of a stream id; sorts the way Redis does."""
    match = _ID.match(message_id) if isinstance(message_id, str) else None
    if not match:
        raise ValidationError(f"Invalid message id: {message_id!r}", code="invalid_id")
    return int(match.group(1)), int(match.group(2))


def next_id(message_id: str) -> str:
    """The smallest stream id greater than `message_id`."""
    ms, seq = parse_id(message_id)
    return f"{ms}-{seq + 1}"


@dataclass(frozen=True)
class StreamEntry:
    id: str
    room: str
    user_id: str
    username: str
    text: str

    @property
    def ts(self) -> int:
        """Creation time in epoch milliseconds (the ms part of the id)."""
        return parse_id(self.id)[0]

    def fields(self) -> dict[str, str]:
        return {
            "v": SCHEMA_VERSION,
            "room": self.room,
            "user_id": self.user_id,
            "username": self.username,
            "text": self.text,
        }

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
        size = 0
        for name in FIELDS_V1:
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
        )
