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

from aurora.backends import database, layout, redis_client
from aurora.deadletters import get_letter, list_letters, printable_json, replay
from aurora.drain import partitions_of
from aurora.errors import AuroraError, ValidationError
from aurora.settings import Settings, get_settings
from aurora.stream import parse_id


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
    # One dead-letter stream per partition; with several, an id is written
    # `<partition>/<id>` (ids are unique per stream only).
    dead = {
        p.name: p.dead for p in partitions_of(layout(settings), settings.stream_partitions_before)
    }

    def label(name: str, letter_id: str) -> str:
        return letter_id if len(dead) == 1 else f"{name}/{letter_id}"

    def locate(ref: str) -> tuple[str, str]:
        """(dead-letter key, id) of `ref`; a bare id is looked up everywhere."""
        name, _, letter_id = ref.rpartition("/")
        parse_id(letter_id)  # invalid_id, before any lookup
        if name:
            if name not in dead:
                raise ValidationError(f"No partition {name[:50]!r}", code="invalid_id")
            return dead[name], letter_id
        for key in dead.values():
            if get_letter(client, letter_id, key=key) is not None:
                return key, letter_id
        return next(iter(dead.values())), letter_id

    if args.command == "list":
        total = 0
        for name, key in dead.items():
            for letter in list_letters(client, limit=args.limit, key=key):
                print(
                    f"{label(name, letter.id)}\t{letter.source_id}\t{letter.code}\t{letter.reason}"
                )
            total += client.xlen(key)
        print(f"{total} dead letter(s)", file=sys.stderr)
        return 0
    if args.command == "show":
        key, letter_id = locate(args.id)
        letter = get_letter(client, letter_id, key=key)
        if letter is None:
            print(f"no dead letter {args.id}", file=sys.stderr)
            return 1
        print(printable_json(letter.as_dict()))
        return 0
    refs = args.ids or [
        label(name, letter.id)
        for name, key in dead.items()
        for letter in list_letters(client, limit=10**9, key=key)
    ]
    db = database(settings)
    failed = 0
    for ref in refs:
        key, letter_id = locate(ref)
        result = replay(client, db, letter_id, key=key)
        failed += result.outcome in ("invalid", "not_found")
        print(f"{ref}\t{result.outcome}\t{result.detail}".rstrip())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
