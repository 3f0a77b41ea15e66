"""The operator's CLI for rooms' resume windows (uses REDIS_URL):

    python scripts/resume_windows.py expire

Resume windows (`aurora:window:{room}`) now expire RESUME_WINDOW_TTL_SECONDS
after the room's last message; the send script sets that on every message.
Windows written before it have no expiry, and those of rooms that stay quiet
would keep it for ever: this gives each of them the expiry it would have had
(from its newest entry's time; already past: it goes now). Safe to run while
the service runs and to run again. Exit status 0, 2 on an error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aurora.backends import redis_client, redis_unavailable
from aurora.errors import AuroraError
from aurora.keyspace import window_key
from aurora.settings import Settings, get_settings

# KEYS[1]: a window; ARGV[1]: its lifetime after the newest entry (ms).
# 1 if an expiry was set, 0 if it had one (a send got there first).
_EXPIRE = """
if redis.call('PTTL', KEYS[1]) ~= -1 then return 0 end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = now
if newest[1] then last = tonumber(string.match(newest[1][1], '^(%d+)')) end
redis.call('PEXPIRE', KEYS[1], math.max(1, last + tonumber(ARGV[1]) - now))
return 1
"""


def expire_windows(settings: Settings) -> int:
    """Give every resume window without an expiry its expiry; how many got one."""
    client = redis_client(settings.redis_url)
    script = client.register_script(_EXPIRE)
    lifetime_ms = settings.resume_window_ttl_seconds * 1000
    done = 0
    with redis_unavailable():
        for key in client.scan_iter(match=window_key("*"), count=1000, _type="stream"):
            done += int(script(keys=[key], args=[lifetime_ms]))
    return done


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python scripts/resume_windows.py",
        description="Maintain rooms' resume windows (uses REDIS_URL).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("expire", help="give windows written before expiries existed theirs")
    parser.parse_args(argv)
    try:
        done = expire_windows(settings or get_settings())
    except AuroraError as exc:
        print(f"error: {exc} ({exc.code})", file=sys.stderr)
        return 2
    print(f"{done} resume window(s) given an expiry", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
