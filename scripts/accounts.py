"""The operator's CLI for user accounts (uses MONGO_URL and MONGO_DB):

    python scripts/accounts.py invalid-usernames

lists the accounts whose names break the username rule (`aurora.users`), one
`<user id>\t<name as a JSON string>` per line, so a trailing newline or an
invisible character shows. Those accounts can no longer log in or refresh.
Exit status 0 if there are none, 1 if some were listed, 2 on an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from aurora.backends import database
from aurora.errors import AuroraError
from aurora.settings import Settings, get_settings
from aurora.users import COLLECTION, USERNAME_RULE, is_valid_username

if TYPE_CHECKING:
    from pymongo.database import Database


def invalid_usernames(db: Database) -> Iterator[tuple[str, object]]:
    """(user id, username) of every account whose name breaks the rule, by id."""
    # Every account is read: no query can express "breaks a Python regex" the
    # same way in MongoDB and its stand-ins, and this runs rarely.
    for user in db[COLLECTION].find({}, {"username": 1}).sort("_id", 1):
        if not is_valid_username(user.get("username")):
            yield str(user["_id"]), user.get("username")


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/accounts.py",
        description="Maintenance of user accounts (uses MONGO_URL and MONGO_DB).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "invalid-usernames", help=f"accounts whose names break the rule ({USERNAME_RULE})"
    )
    parser.parse_args(argv)
    try:
        db = database(settings or get_settings())
        found = 0
        for user_id, username in invalid_usernames(db):
            found += 1
            print(f"{user_id}\t{json.dumps(username)}")
    except AuroraError as exc:
        print(f"error: {exc} ({exc.code})", file=sys.stderr)
        return 2
    print(f"{found} account(s) break the username rule", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
