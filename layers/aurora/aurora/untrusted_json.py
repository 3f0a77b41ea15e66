"""JSON that comes from outside: client frames, pub/sub notices, stream and
dead-letter fields. Python's decoder recurses once per nesting level, so a
few KiB of "[" raise RecursionError; here that is a malformed input like any
other (a ValueError), so callers need only catch ValueError."""

from __future__ import annotations

import json
from typing import Any


class TooDeep(ValueError):
    """Nested deeper than the decoder can follow."""


def loads(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise TooDeep("JSON nests too deeply") from None
