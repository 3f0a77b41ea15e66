"""Give stored memberships their room's activity key, which `GET /api/rooms`
reads by index (uses MONGO_URL and MONGO_DB). Idempotent: safe to run again,
and after a crash half way.

    python scripts/migrate_room_activity.py

Run it once after deploying the release whose listing reads memberships by
activity (docs/deploy.md, "Upgrading"); until then the listing reads the
memberships without it through their rooms: right, only slower.
"""

from __future__ import annotations

from aurora.backends import database
from aurora.migrations import copy_room_activity
from aurora.settings import get_settings


def main() -> int:
    copied = copy_room_activity(database(get_settings()))
    print(f"memberships of {copied} room(s) carry their activity")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
