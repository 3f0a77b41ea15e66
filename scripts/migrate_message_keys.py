"""Re-key stored messages to `_id = "<room>/<stream id>"` (uses MONGO_URL and
MONGO_DB). Idempotent: safe to run again, and after a crash half way.

    python scripts/migrate_message_keys.py

Run it once after deploying the release that stores messages under the new
key (docs/deploy.md, "Upgrading"); until then history reads both shapes.
"""

from __future__ import annotations

from aurora.backends import database
from aurora.migrations import rekey_messages
from aurora.settings import get_settings


def main() -> int:
    moved = rekey_messages(database(get_settings()))
    print(f"{moved} message document(s) re-keyed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
