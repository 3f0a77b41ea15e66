"""Reading stored messages: a room's history in pages and search in one room
(the messages function's rules).

Pages follow the `room_time` index: (`room`, `ms`, `seq`), never the string
order of ids. A cursor is a message id; the next page holds exactly the
messages on the far side of it, so walking every page returns each stored
message once, in order, however many share one millisecond.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aurora import membership, messages, rooms
from aurora.errors import ForbiddenError, UnavailableError, ValidationError
from aurora.stream import parse_id

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

    from aurora.settings import Settings
    from aurora.tokens import Claims

# BSON integers are signed 64-bit; stream id parts go to 2**64 - 1. No stored
# message has a part above this (it could not have been inserted), so a
# cursor beyond it is compared without ever sending the number to MongoDB.
_BSON_MAX = 2**63 - 1
SEARCH_MIN_CHARS, SEARCH_MAX_CHARS = 1, 100
# Only what a page shows is read from the database.
_FIELDS = {"id": 1, "room": 1, "user_id": 1, "username": 1, "text": 1, "attachments": 1, "ms": 1,
           "client_id": 1}  # fmt: skip


def check_access(claims: Claims, room: object) -> str:
    """The room id, if it is valid and the caller may read it."""
    room = rooms.check_room(room)
    if not membership.may_access(claims, room):
        raise ForbiddenError("Not a member of this room")
    return room


def parse_limit(raw: str | None, settings: Settings) -> int:
    """The page size asked for: the default when absent, 1..max otherwise."""
    if raw is None:
        return settings.history_page_default
    top = settings.history_page_max
    if not re.fullmatch(r"[0-9]{1,4}", raw, re.ASCII) or not 1 <= int(raw) <= top:
        raise ValidationError(f"limit must be an integer from 1 to {top}", code="invalid_limit")
    return int(raw)


def page(
    db: Database,
    room: str,
    settings: Settings,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int,
) -> dict[str, Any]:
    """Without `after`: the newest messages older than `before` (or the
    newest of all), newest first, and `next_before`. With `after`: the
    messages after it, oldest first, and `next_after`. The cursor is null
    when there is nothing more."""
    if before is not None and after is not None:
        raise ValidationError("Give before or after, not both", code="invalid_request")
    if after is not None:
        found, more = _fetch(db, room, parse_id(after), limit, settings, newer=True)
        return _answer(found, more, "next_after")
    cursor = None if before is None else parse_id(before)
    found, more = _fetch(db, room, cursor, limit, settings, newer=False)
    return _answer(found, more, "next_before")


def search(
    db: Database,
    room: str,
    q: str | None,
    settings: Settings,
    *,
    before: str | None = None,
    limit: int,
) -> dict[str, Any]:
    """Messages of `room` whose text contains `q` (literally, ignoring case),
    newest first, older than `before` if given, and `next_before`.

    No text index: SecantusDB has none, so this is an escaped regular
    expression over the room's messages, newest first, stopped by `limit`
    and bounded in time (`history_query_max_ms`): docs/architecture.md.
    """
    if q is None or not SEARCH_MIN_CHARS <= len(q) <= SEARCH_MAX_CHARS:
        raise ValidationError(
            f"q must be {SEARCH_MIN_CHARS} to {SEARCH_MAX_CHARS} characters", code="invalid_query"
        )
    if "\0" in q:  # a BSON regex is a C string
        raise ValidationError("q must not contain NUL", code="invalid_query")
    match = {"text": {"$regex": re.escape(q), "$options": "i"}}
    cursor = None if before is None else parse_id(before)
    found, more = _fetch(db, room, cursor, limit, settings, newer=False, match=match)
    return _answer(found, more, "next_before")


# -- reading in index order ----------------------------------------------------------


def _answer(found: list[dict[str, Any]], more: bool, cursor_field: str) -> dict[str, Any]:
    """The page, and the cursor for the next one (its last id) if there is more."""
    page_messages = [messages.from_document(doc) for doc in found]
    next_cursor = page_messages[-1]["id"] if more else None
    return {"messages": page_messages, cursor_field: next_cursor}


def _fetch(
    db: Database,
    room: str,
    cursor: tuple[int, int] | None,
    limit: int,
    settings: Settings,
    *,
    newer: bool,
    match: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` documents of `room` beyond `cursor` in (ms, seq) order
    (ascending when `newer`), and whether there are more.

    Beyond (ms, seq) is two index ranges, read in order: the rest of `ms`
    (by `seq`), then the milliseconds past it. Each is a plain range scan of
    `room_time`, on any MongoDB. One extra document tells if there is more.
    """
    collection = db[messages.COLLECTION]
    want = limit + 1
    base = {"room": room, **(match or {})}
    ranges: list[dict[str, Any]] = [{}]
    if cursor is not None:
        ms, seq = cursor
        beyond = _past if newer else _short_of
        ranges = []
        if ms <= _BSON_MAX and (seq_range := beyond(seq)) is not None:
            ranges.append({"ms": ms, "seq": seq_range})
        if (ms_range := beyond(ms)) is not None:
            ranges.append({"ms": ms_range})
    found: list[dict[str, Any]] = []
    with bounded():
        for extra in ranges:
            if len(found) < want:
                found += _find(collection, base | extra, want - len(found), newer, settings)
    return found[:limit], len(found) > limit


def _find(
    collection: Collection, query: dict[str, Any], n: int, newer: bool, settings: Settings
) -> list[dict[str, Any]]:
    order = 1 if newer else -1
    sort = [("ms", order), ("seq", order)]
    max_ms = settings.history_query_max_ms
    return list(collection.find(query, _FIELDS, sort=sort, limit=n, max_time_ms=max_ms))


def _past(part: int) -> dict[str, int] | None:
    """Values above `part`, as a query on a stored (signed 64-bit) field."""
    return {"$gt": part} if part < _BSON_MAX else None


def _short_of(part: int) -> dict[str, int]:
    """Values below `part`, as a query on a stored (signed 64-bit) field."""
    return {"$lt": part} if part <= _BSON_MAX else {"$lte": _BSON_MAX}


@contextmanager
def bounded() -> Iterator[None]:
    """A query over its time bound, or a database that cannot answer: 503."""
    from pymongo.errors import ConnectionFailure, ExecutionTimeout

    try:
        yield
    except ExecutionTimeout:
        raise UnavailableError(
            "The query took too long; ask for a smaller page or a narrower search",
            code="query_timeout",
        ) from None
    except ConnectionFailure:
        raise UnavailableError() from None
