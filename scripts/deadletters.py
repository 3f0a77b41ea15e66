"""The operator's CLI for dead letters (uses REDIS_URL, MONGO_URL and MONGO_DB):

    python scripts/deadletters.py list [--limit N]
    python scripts/deadletters.py show DEAD_LETTER_ID
    python scripts/deadletters.py replay (DEAD_LETTER_ID... | --all)

The rules live in `aurora.deadletters`; this stays out of the Lambda layer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aurora.backends import database, redis_client
from aurora.deadletters import get_letter, list_letters, printable_json, replay
from aurora.errors import AuroraError
from aurora.keyspace import DEAD_LETTER_KEY
from aurora.settings import Settings, get_settings


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Exit status 0 on success, 1 if something was not found or could not be
    replayed, 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python scripts/deadletters.py",
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
        print(printable_json(letter.as_dict()))
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
