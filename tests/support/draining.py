"""The drain as the ingest function builds it, for tests: over the
deployment's partitions (one stream on a single Redis, twelve on a cluster)."""

from __future__ import annotations

from typing import Any

from aurora.backends import database, layout, redis_client
from aurora.drain import Drain, partitions_of
from aurora.settings import Settings


def deployment_drain(settings: Settings, *, consumer: str = "t", **kwargs: Any) -> Drain:
    """A Drain of `settings`' Redis and database (`kwargs`: the Drain's)."""
    kwargs.setdefault(
        "partitions", partitions_of(layout(settings), settings.stream_partitions_before)
    )
    return Drain(redis_client(settings.redis_url), database(settings), consumer=consumer, **kwargs)


def drain_until_idle(settings: Settings, **kwargs: Any) -> None:
    """Run the drain until every stream is empty (`kwargs`: the Drain's)."""
    kwargs.setdefault("block_ms", 20)
    deployment_drain(settings, **kwargs).run(lambda: True, exit_when_idle=True)
