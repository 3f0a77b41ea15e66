"""`python -m local.throttles clear`: lift the login and registration throttles
of the running local stack (its Redis keeps them across restarts)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import redis

from aurora.backends import redis_client
from aurora.errors import UnavailableError

ROOT = Path(__file__).resolve().parent.parent
# Every throttle counter aurora.throttling keeps: failed logins per username
# and IP, per IP, and registrations per IP.
PATTERN = "aurora:throttle:*"


def clear(client: redis.Redis) -> int:
    """Delete every throttle counter; how many there were. On a cluster,
    SCAN visits every primary and DEL splits its keys by slot."""
    keys = list(client.scan_iter(match=PATTERN, count=1000))
    return client.delete(*keys) if keys else 0


def redis_url(data_dir: Path) -> str:
    """The running stack's Redis (from its local.json), else REDIS_URL."""
    state = data_dir / "local.json"
    if state.exists():
        return json.loads(state.read_text())["redis_url"]
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    raise SystemExit(f"no running local stack ({state} is missing) and no REDIS_URL set")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.throttles", description=__doc__)
    parser.add_argument("command", choices=["clear"])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("AURORA_DATA_DIR", ROOT / ".aurora")),
        help="the stack's data folder (where its local.json is)",
    )
    args = parser.parse_args(argv)
    url = redis_url(args.data_dir)
    try:
        # The stack's Redis may be a cluster (`--redis-cluster`): its URL
        # lists several nodes, which only the product's client reads.
        removed = clear(redis_client(url))
    except (redis.ConnectionError, UnavailableError) as exc:
        raise SystemExit(f"cannot reach Redis at {url}: {exc}") from None
    print(f"cleared {removed} throttle counter(s) in {url}", file=sys.stdout)


if __name__ == "__main__":
    main()
