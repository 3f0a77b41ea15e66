"""Write back into Redis what it keeps of MongoDB's data, for a Redis that
lost its data or was replaced (uses REDIS_URL, MONGO_URL and MONGO_DB):

    python scripts/rebuild_redis.py            # everything below, in this order
    python scripts/rebuild_redis.py counts     # only the unread counts' state

- `mirror`: rooms, memberships and bans (`membership.rebuild_mirror`), then
  blocks (`blocks.rebuild_mirror`);
- `counts`: room message counters, read and delivered cursors, deleted and
  own message numbers (`recount.rebuild_counts`).

Idempotent and safe while the service runs (docs/reliability.md, "Recovering
a Redis that lost its data", says what it cannot restore). On a single Redis
or a cluster alike. Exit status 0, 2 on an error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aurora import blocks, membership, recount
from aurora.backends import database, layout, redis_client, redis_unavailable
from aurora.errors import AuroraError
from aurora.settings import Settings, get_settings

PARTS = ("mirror", "counts")


def rebuild(settings: Settings, parts: Sequence[str] = PARTS) -> list[str]:
    """Rebuild the named parts; one line of what was done per part."""
    db, client = database(settings), redis_client(settings.redis_url)
    said = []
    with redis_unavailable():
        if "mirror" in parts:
            rooms = membership.rebuild_mirror(db, client)
            users = blocks.rebuild_mirror(db, client)
            said.append(f"mirror: {rooms} room(s), blocks of {users} user(s)")
        if "counts" in parts:
            done = recount.rebuild_counts(db, client, layout(settings))
            said.append(
                f"counts: {done.rooms} room(s), {done.counters_raised} counter(s) raised, "
                f"cursors of {done.cursors} reader(s), {done.deleted} deleted number(s), "
                f"{done.own} own number(s) added"
            )
    return said


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/rebuild_redis.py",
        description="Rebuild Redis's copy of MongoDB's data (uses REDIS_URL, MONGO_URL).",
    )
    parser.add_argument("parts", nargs="*", metavar="{mirror,counts}", help="default: both")
    args = parser.parse_args(argv)
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    try:
        for line in rebuild(settings or get_settings(), args.parts or PARTS):
            print(line, file=sys.stderr)
    except AuroraError as exc:
        print(f"error: {exc} ({exc.code})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
