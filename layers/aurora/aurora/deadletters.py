"""Dead letters: stream entries the drain could not store, kept with the
reason, and the operator's tools to list, inspect and replay them.

    python -m aurora.deadletters list [--limit N]
    python -m aurora.deadletters show DEAD_LETTER_ID
    python -m aurora.deadletters replay (DEAD_LETTER_ID... | --all)

Each dead letter is one entry of `DEAD_LETTER_KEY` with the fields
`source_id` (the original stream id, which stays the message id), `code`,
`reason` and `fields` (the original entry as JSON). Replay writes the message
straight into MongoDB under its original id, so replaying twice, or
replaying something a crashed run had stored after all, stores it once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aurora import messages, untrusted_json
from aurora.errors import AuroraError, ValidationError
from aurora.keyspace import DEAD_LETTER_KEY
from aurora.stream import StreamEntry, parse_id

if TYPE_CHECKING:
    import redis
    from pymongo.database import Database

    from aurora.settings import Settings


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
) -> None:
    """Queue one dead letter on `pipe` (the drain's ack transaction)."""
    pipe.xadd(
        DEAD_LETTER_KEY,
        {
            "source_id": source_id,
            "code": reason.code,
            "reason": reason.message,
            "fields": _json(fields or {}),
        },
    )


def _json(value: Any) -> str:
    """JSON that Redis and a terminal can take: readable UTF-8, or escapes
    when the value holds undecodable bytes (lone surrogates)."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


def list_letters(client: redis.Redis, *, limit: int = 100) -> list[DeadLetter]:
    """The oldest `limit` dead letters."""
    return [DeadLetter.from_redis(i, raw) for i, raw in client.xrange(DEAD_LETTER_KEY, count=limit)]


def get_letter(client: redis.Redis, letter_id: str) -> DeadLetter | None:
    parse_id(letter_id)  # a clear ValidationError instead of a Redis syntax error
    found = client.xrange(DEAD_LETTER_KEY, min=letter_id, max=letter_id)
    return DeadLetter.from_redis(*found[0]) if found else None


@dataclass(frozen=True)
class ReplayResult:
    letter_id: str
    outcome: str  # stored | already_stored | invalid | not_found
    detail: str = ""


def replay(client: redis.Redis, db: Database, letter_id: str) -> ReplayResult:
    """Store one dead letter's message under its original id, then remove
    the dead letter. An entry that is still invalid stays dead-lettered."""
    from pymongo.errors import DuplicateKeyError

    letter = get_letter(client, letter_id)
    if letter is None:
        return ReplayResult(letter_id, "not_found")
    try:
        doc = messages.document(StreamEntry.from_redis(letter.source_id, letter.fields))
    except ValidationError as exc:
        return ReplayResult(letter_id, "invalid", str(exc))
    try:
        db[messages.COLLECTION].insert_one(doc)
        outcome = "stored"
    except DuplicateKeyError:
        outcome = "already_stored"
    # Removed only once the database has it: a crash here means a replay
    # again, which is a duplicate key, not a second message.
    client.xdel(DEAD_LETTER_KEY, letter_id)
    return ReplayResult(letter_id, outcome)


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """The CLI; exit status 0 on success, 1 if something was not found or
    could not be replayed, 2 on bad input."""
    from aurora.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="python -m aurora.deadletters",
        description="List, inspect and replay dead-lettered messages "
        "(uses REDIS_URL, MONGO_URL and MONGO_DB).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="one line per dead letter, oldest first")
    listing.add_argument("--limit", type=int, default=100)
    show = commands.add_parser("show", help="one dead letter as JSON")
    show.add_argument("id")
    again = commands.add_parser("replay", help="store dead letters in MongoDB, then remove them")
    again.add_argument("ids", nargs="*")
    again.add_argument("--all", action="store_true", help="every dead letter")
    args = parser.parse_args(argv)
    if args.command == "replay" and not args.ids and not args.all:
        parser.error("replay needs dead-letter ids or --all")
    try:
        return _run(args, settings or get_settings())
    except AuroraError as exc:
        print(f"error: {exc} ({exc.code})", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from aurora.backends import database, redis_client

    client = redis_client(settings.redis_url)
    if args.command == "list":
        for letter in list_letters(client, limit=args.limit):
            print(f"{letter.id}\t{letter.source_id}\t{letter.code}\t{letter.reason}")
        print(f"{client.xlen(DEAD_LETTER_KEY)} dead letter(s)", file=sys.stderr)
        return 0
    if args.command == "show":
        letter = get_letter(client, args.id)
        if letter is None:
            print(f"no dead letter {args.id}", file=sys.stderr)
            return 1
        print(_json(letter.as_dict()))
        return 0
    ids = args.ids or [letter.id for letter in list_letters(client, limit=10**9)]
    db = database(settings)
    failed = 0
    for letter_id in ids:
        result = replay(client, db, letter_id)
        failed += result.outcome in ("invalid", "not_found")
        print(f"{result.letter_id}\t{result.outcome}\t{result.detail}".rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
