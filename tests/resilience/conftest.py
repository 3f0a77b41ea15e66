"""Fixtures for fault tests: a Redis of the test's own (it gets killed), two
fan-out replicas as processes, and the test's own MongoDB database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aurora.backends import close_database_clients
from tests.support.faults import RedisServer, Stack, make_stack, new_redis


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = new_redis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def stack(tmp_path: Path, own_redis: RedisServer, mongo_server, mongo_db_name) -> Iterator[Stack]:
    """Redis, two replicas and a database, none shared with another test."""
    built = make_stack(tmp_path, own_redis, mongo_server.url, mongo_db_name)
    yield built
    built.stop()
    close_database_clients()
