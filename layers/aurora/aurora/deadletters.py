"""Dead letters: stream entries the drain could not store, kept with the
reason, and what the operator's CLI (`scripts/deadletters.py`) does with them:
list, inspect and replay.

Each dead letter is one entry of `DEAD_LETTER_KEY` (of its partition's
dead-letter stream, `Layout.dead_letter_key`, when there are partitions) with the fields
`source_id` (the original stream id, which stays the message id), `code`,
`reason` and `fields` (the original entry as JSON). Replay writes the message
straight into MongoDB under its original id, so replaying twice, or
replaying something a crashed run had stored after all, stores it once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aurora import message_state, messages, receipts, untrusted_json
from aurora.errors import ValidationError
from aurora.keyspace import DEAD_LETTER_KEY
from aurora.stream import CURSOR_KINDS, ChangeEntry, parse_entry, parse_id

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database


@dataclass(frozen=True)
class Reason:
    code: str  # stable: missing_fields, bad_version, too_many_deliveries, ...
    message: str


@dataclass(frozen=True)
class DeadLetter:
    id: str  # id in the dead-letter stream
    source_id: str  # id in the persistence stream: the message id
    code: str
    reason: str
    fields: dict[str, Any]

    @classmethod
    def from_redis(cls, letter_id: str, raw: dict[str, str]) -> DeadLetter:
        try:
            fields = untrusted_json.loads(raw.get("fields") or "{}")
        except ValueError:
            fields = {"_unparseable": raw.get("fields")}
        return cls(
            id=letter_id,
            source_id=raw.get("source_id", ""),
            code=raw.get("code", "unknown"),
            reason=raw.get("reason", ""),
            fields=fields if isinstance(fields, dict) else {"_value": fields},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source_id": self.source_id,
            "code": self.code,
            "reason": self.reason,
            "fields": self.fields,
        }


def record(
    pipe: redis.Redis | redis.client.Pipeline,
    source_id: str,
    fields: dict[str, Any] | None,
    reason: Reason,
    *,
    key: str = DEAD_LETTER_KEY,
) -> None:
    """Queue one dead letter on `pipe` (the drain's ack transaction)."""
    pipe.xadd(
        key,
        {
            "source_id": source_id,
            "code": reason.code,
            "reason": reason.message,
            "fields": printable_json(fields or {}),
        },
    )


def printable_json(value: Any) -> str:
    """JSON that Redis and a terminal can take: readable UTF-8, or escapes
    when the value holds undecodable bytes (lone surrogates)."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


def list_letters(
    client: redis.Redis, *, limit: int = 100, key: str = DEAD_LETTER_KEY
) -> list[DeadLetter]:
    """The oldest `limit` dead letters."""
    return [DeadLetter.from_redis(i, raw) for i, raw in client.xrange(key, count=limit)]


def get_letter(
    client: redis.Redis, letter_id: str, *, key: str = DEAD_LETTER_KEY
) -> DeadLetter | None:
    parse_id(letter_id)  # a clear ValidationError instead of a Redis syntax error
    found = client.xrange(key, min=letter_id, max=letter_id)
    return DeadLetter.from_redis(*found[0]) if found else None


@dataclass(frozen=True)
class ReplayResult:
    letter_id: str
    outcome: str  # stored | already_stored | applied | parked | invalid | not_found
    detail: str = ""


def replay(
    client: redis.Redis, db: Database, letter_id: str, *, key: str = DEAD_LETTER_KEY
) -> ReplayResult:
    """Store one dead letter's message under its original id (or apply its
    change), then remove the dead letter. An entry that is still invalid
    stays dead-lettered."""
    from pymongo.errors import DuplicateKeyError

    letter = get_letter(client, letter_id, key=key)
    if letter is None:
        return ReplayResult(letter_id, "not_found")
    try:
        entry = parse_entry(letter.source_id, letter.fields)
    except ValidationError as exc:
        return ReplayResult(letter_id, "invalid", str(exc))
    if isinstance(entry, ChangeEntry) and entry.kind in CURSOR_KINDS:
        receipts.persist(db, [entry])
        outcome = "applied"
    elif isinstance(entry, ChangeEntry):
        # Idempotent as the drain applies it; kept for its message if that
        # is not stored (yet).
        _, parked = message_state.apply(db, [entry])
        outcome = "parked" if parked else "applied"
    else:
        doc = messages.document(entry)
        try:
            db[messages.COLLECTION].insert_one(doc)
            outcome = "stored"
        except DuplicateKeyError:
            outcome = "already_stored"
        message_state.apply_parked(db, [doc["_id"]])
    # Removed only once the database has it: a crash here means a replay
    # again, which is a duplicate key, not a second message.
    client.xdel(key, letter_id)
    return ReplayResult(letter_id, outcome)
