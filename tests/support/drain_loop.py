"""The drain as a long-running process, for tests that kill it mid-batch:
`python -m tests.support.drain_loop` with the usual settings in the
environment. It drains until it is killed; a failed run (MongoDB away) is
retried, as the schedule would."""

from __future__ import annotations

import os
import time

from aurora.settings import get_settings
from tests.support.draining import deployment_drain


def main() -> None:
    settings = get_settings()
    consumer = os.environ.get("DRAIN_CONSUMER", f"drain-{os.getpid()}")
    while True:
        try:
            drain = deployment_drain(
                settings,
                consumer=consumer,
                batch_size=settings.drain_batch_size,
                block_ms=settings.drain_block_ms,
                claim_idle_ms=settings.drain_claim_idle_ms,
            )
            drain.run(lambda: True)
        except Exception as exc:  # the next run retries, as the schedule would
            print(f"drain run failed: {exc!r}", flush=True)
            time.sleep(0.2)


if __name__ == "__main__":
    main()
