"""Parsing client frames. Bad input is an answer (an error frame), never a crash."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aurora.errors import ValidationError

DEFAULT_ROOM = "general"


@dataclass(frozen=True)
class SendText:
    room: str
    text: str


def parse_client_frame(raw: str | bytes, *, max_text_chars: int) -> SendText | None:
    """The command a client frame carries; None for frames to ignore (empty
    text, like the original); ValidationError for anything malformed."""
    if isinstance(raw, bytes):
        raise ValidationError("Binary frames are not supported", code="unsupported_frame")
    try:
        frame = json.loads(raw)
    except ValueError:
        raise ValidationError("Frame is not valid JSON", code="bad_json") from None
    if not isinstance(frame, dict):
        raise ValidationError("Frame must be a JSON object", code="bad_frame")
    kind = frame.get("type", "message")
    if kind != "message":
        raise ValidationError(f"Unknown frame type {kind!r}", code="unknown_type")
    room = frame.get("room", DEFAULT_ROOM)
    if room != DEFAULT_ROOM:
        raise ValidationError("Only the 'general' room is available", code="forbidden_room")
    text = frame.get("text")
    if text is None:
        raise ValidationError("Field 'text' is required", code="missing_text")
    if not isinstance(text, str):
        raise ValidationError("Field 'text' must be a string", code="bad_text")
    if not text.strip():
        return None
    if len(text) > max_text_chars:
        raise ValidationError(f"Text longer than {max_text_chars} characters", code="too_long")
    return SendText(room=room, text=text)


def error_frame(code: str, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "message": message})


def rate_limited_frame(retry_after_ms: int) -> str:
    return json.dumps({"type": "rate_limited", "retry_after_ms": retry_after_ms})
