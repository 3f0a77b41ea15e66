"""Protocol v1 frames (docs/protocol.md). Parsing client frames turns bad input
into a ValidationError with a stable code (sent as an `error` frame), never a
crash; v0's untyped `{"text"}` frame is a message to `general`."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from aurora import untrusted_json
from aurora.changes import check_edit_text
from aurora.emoji import check_emoji
from aurora.errors import (
    AuthenticationError,
    ForbiddenError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
    invalid_input,
)
from aurora.rooms import DEFAULT_ROOM, ROOM_PATTERN, ROOM_RULE
from aurora.stream import MAX_CLIENT_ID_CHARS, is_client_id

SUBPROTOCOL = "aurora.v1"
BEARER_PREFIX = "bearer."

# Close codes. Those that end a connection for an error of the family are
# the error's own (`aurora.errors`); the others are the fan-out's.
CLOSE_AUTH_FAILED = AuthenticationError.close_code  # 4001: failed, missing or expired token
CLOSE_FORBIDDEN = ForbiddenError.close_code  # 4003: e.g. re-auth as another user
CLOSE_TOO_MANY_CONNECTIONS = RateLimitedError.close_code  # 4029: the user's cap, all replicas
CLOSE_UNAVAILABLE = UnavailableError.close_code  # 1011: Redis unreachable; retry
CLOSE_TOO_SLOW = 4008  # the send buffer stayed over its limit
CLOSE_FLOOD = 1008  # policy violation: a sustained flood of frames (`fanout.frame_limit`)
CLOSE_NO_PONG = 1011  # no pong to the previous keepalive ping
CLOSE_SERVER_RESTART = 1012  # reconnect, to this or another replica

# Room ids also name Redis keys and channels: the layer's one rule (aurora.rooms).
Room = Annotated[str, StringConstraints(pattern=ROOM_PATTERN)]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CLIENT_ID_CHARS)]


class _Frame(BaseModel):
    # strict: "typing": 1 is not a bool, "text": 5 is not a string.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")


class Auth(_Frame):
    type: Literal["auth"]
    token: str


class Join(_Frame):
    type: Literal["join"]
    room: Room
    since: str | None = None  # last message id seen in the room


class Leave(_Frame):
    type: Literal["leave"]
    room: Room


class SendMessage(_Frame):
    type: Literal["message"]
    room: Room = DEFAULT_ROOM
    text: str  # may be blank when the message carries attachments
    client_id: ClientId | None = None
    # [{url, file_type, size, filename}]: checked against S3 by the send path
    # (`fanout.upload_check`), which owns their codes (`invalid_attachment`, …).
    attachments: list[Any] | None = None


class Edit(_Frame):
    type: Literal["edit"]
    room: Room
    id: str  # the message's id; parsed by the change path (`invalid_id`)
    text: str
    client_id: ClientId | None = None


class Delete(_Frame):
    type: Literal["delete"]
    room: Room
    id: str
    client_id: ClientId | None = None


class React(_Frame):
    type: Literal["react"]
    room: Room
    id: str
    emoji: str  # checked by the change path (`aurora.emoji`: `invalid_emoji`)
    on: bool  # add or remove; never a toggle, so a retry cannot undo itself
    client_id: ClientId | None = None


class Read(_Frame):
    """The newest message of the room seen (`read`) or received (`delivered`)."""

    type: Literal["read", "delivered"]
    room: Room
    id: str


class Typing(_Frame):
    type: Literal["typing"]
    room: Room
    typing: bool


class Ping(_Frame):
    type: Literal["ping"]


_WITH_CLIENT_ID = ("message", "edit", "delete", "react")
ClientFrame = Auth | Join | Leave | SendMessage | Edit | Delete | React | Read | Typing | Ping
_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(
    Annotated[ClientFrame, Field(discriminator="type")]
)


def parse_client_frame(raw: str | bytes, *, max_text_chars: int) -> ClientFrame | None:
    """The command a client frame carries; None for a v0 `{"text"}` frame
    with blank text (ignored, like the original server);
    ValidationError for anything else, a blank typed message included (a v1
    client always gets an answer to a send)."""
    if isinstance(raw, bytes):
        raise ValidationError("Binary frames are not supported", code="unsupported_frame")
    frame = _load(raw)
    if not isinstance(frame, dict):
        raise ValidationError("Frame must be a JSON object", code="bad_frame")
    v0 = "type" not in frame
    if v0:
        frame["type"] = "message"  # v0: {"text"} to general
    try:
        command = _CLIENT_FRAME.validate_python(frame)
    except PydanticValidationError as exc:
        raise _explain(exc) from None
    if isinstance(command, SendMessage):
        if not command.text.strip() and not command.attachments:
            if v0:
                return None
            raise ValidationError("Message text is empty", code="empty_text")
        if len(command.text) > max_text_chars:
            raise ValidationError(f"Text longer than {max_text_chars} characters", code="too_long")
    if isinstance(command, Edit):
        check_edit_text(command.text, max_text_chars)
    if isinstance(command, React):
        check_emoji(command.emoji)
    return command


def _load(raw: str | bytes) -> Any:
    try:
        return untrusted_json.loads(raw)
    except untrusted_json.TooDeep:
        raise ValidationError("Frame nests too deeply", code="bad_json") from None
    except ValueError:
        raise ValidationError("Frame is not valid JSON", code="bad_json") from None


def claimed_client_id(raw: str | bytes) -> str | None:
    """The `client_id` of a message, edit or delete frame that failed to parse
    or to be done, if it names one validly, so the refusal can say which
    request it answers."""
    try:
        frame = _load(raw)
    except ValidationError:
        return None
    if not isinstance(frame, dict) or frame.get("type", "message") not in _WITH_CLIENT_ID:
        return None
    client_id = frame.get("client_id")
    return client_id if is_client_id(client_id) else None


def _explain(exc: PydanticValidationError) -> ValidationError:
    error = exc.errors(include_url=False, include_input=False)[0]
    kind = error["type"]
    field = ".".join(str(part) for part in error["loc"][1:]) or "type"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return ValidationError("Unknown frame type", code="unknown_type")
    if kind == "missing":
        return ValidationError(f"Field {field!r} is required", code="missing_field")
    if field == "room":
        return ValidationError(f"Field 'room' must be {ROOM_RULE}", code="bad_room")
    return invalid_input([error], "Invalid frame", code="bad_field", skip=1)


# -- server frames (each encoded once) ---------------------------------------------


def _dump(frame: dict) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def ready_frame(user: str, user_id: str) -> str:
    return _dump({"type": "ready", "user": user, "user_id": user_id})


def joined_frame(room: str, *, recovered: bool, missed: int) -> str:
    return _dump({"type": "joined", "room": room, "recovered": recovered, "missed": missed})


def left_frame(room: str, *, reason: str | None = None) -> str:
    """`reason` when the server took the connection out of the room: `removed`,
    `banned` or `deleted` (absent when the client asked to leave)."""
    frame = {"type": "left", "room": room}
    return _dump(frame if reason is None else frame | {"reason": reason})


def ack_frame(client_id: str, message_id: str, *, duplicate: bool = False) -> str:
    return _dump({"type": "ack", "client_id": client_id, "id": message_id, "duplicate": duplicate})


def error_frame(code: str, message: str, *, client_id: str | None = None) -> str:
    """`client_id` when the error answers a `message` frame that had one."""
    frame = {"type": "error", "code": code, "message": message}
    return _dump(frame if client_id is None else frame | {"client_id": client_id})


def rate_limited_frame(retry_after_ms: int, *, client_id: str | None = None) -> str:
    frame = {"type": "rate_limited", "retry_after_ms": retry_after_ms}
    return _dump(frame if client_id is None else frame | {"client_id": client_id})


def typing_frame(room: str, user: str, user_id: str, typing: bool) -> str:
    return _dump({"type": "typing", "room": room, "user": user, "user_id": user_id,
                  "typing": typing})  # fmt: skip


def presence_frame(snapshot: dict[str, Any]) -> str:
    """After `joined`: `{"type": "presence", "room", "count", "online": [{"user",
    "user_id"}] (at most 50), "more"}` (`aurora.presence.snapshot_frame`)."""
    return _dump(snapshot)


PONG = _dump({"type": "pong"})
# To one user's connections only: your list of rooms changed (an invitation, a
# new direct room, a role, a removal, a ban); read it again (GET /api/rooms).
# It names no room: it cannot tell anyone anything about a room they may not see.
ROOMS_CHANGED = _dump({"type": "rooms_changed"})
