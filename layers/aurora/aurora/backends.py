"""Redis and MongoDB clients, chosen by URL and created once per process.

Nothing connects at import time; the first call creates the client and, for
MongoDB, makes sure the indexes exist (once per process start, not per call).
"""

from __future__ import annotations

import atexit
import sys
import threading
from functools import lru_cache
from typing import TYPE_CHECKING

from aurora.errors import UnavailableError
from aurora.settings import Settings

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from pymongo.database import Database

_index_lock = threading.Lock()
_indexed: set[tuple[str, str]] = set()
_mongo_clients: list = []  # what _mongo_client made, for close_database_clients()


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """A synchronous Redis client (connection pool) for Lambda handlers."""
    import redis

    return redis.Redis.from_url(
        url,
        decode_responses=True,
        # Bytes that are not UTF-8 (written by something other than our send
        # script) must not make a whole reply unreadable: they decode to
        # lone surrogates, and the drain dead-letters that one entry.
        encoding_errors="surrogateescape",
        socket_connect_timeout=5,
        health_check_interval=30,
    )


def async_redis_client(url: str, *, max_connections: int = 64) -> redis.asyncio.Redis:
    """An asyncio Redis client for the fan-out container (one per event loop).

    Its pool is bounded and blocking: a burst of commands (thousands of clients
    connecting at once) waits for a free connection instead of failing."""
    import redis.asyncio

    pool = redis.asyncio.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        decode_responses=True,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return redis.asyncio.Redis.from_pool(pool)


@lru_cache(maxsize=8)
def _mongo_client(url: str):  # -> pymongo.MongoClient
    from pymongo import MongoClient

    client = MongoClient(url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, tz_aware=True)
    atexit.register(client.close)  # end its server sessions cleanly when the process exits
    _mongo_clients.append(client)
    return client


def close_database_clients() -> None:
    """Close this process's MongoDB clients now, not at exit: a host that
    stops its own database server (the local stack) closes them first, else
    pymongo would wait for that server at exit to end its sessions."""
    while _mongo_clients:
        _mongo_clients.pop().close()
    _mongo_client.cache_clear()
    with _index_lock:
        _indexed.clear()


def database(settings: Settings) -> Database:
    """The AuroraChat database, with its indexes ensured once per process."""
    db = _mongo_client(settings.mongo_url)[settings.mongo_db]
    key = (settings.mongo_url, settings.mongo_db)
    if key not in _indexed:
        with _index_lock:
            if key not in _indexed:
                from aurora import message_state, messages, rooms, users

                users.ensure_indexes(db)
                messages.ensure_indexes(db)
                message_state.ensure_indexes(db)
                rooms.ensure_indexes(db)
                _indexed.add(key)
    return db


class redis_unavailable:
    """`with redis_unavailable("Cannot check the token now, retry"):` turns
    what redis-py raises (Redis unreachable, a timeout, a refused command) and
    an OSError on the way (e.g. the TimeoutError of a wait for a connection)
    into UnavailableError: 503 over HTTP, 1011 or an `unavailable` error
    frame over a WebSocket. For sync and async code alike; the cause stays
    attached for the logs. Costs nothing until something is raised."""

    __slots__ = ("_message",)

    def __init__(self, message: str | None = None) -> None:
        self._message = message

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _tb) -> bool:
        if exc is None or isinstance(exc, UnavailableError):
            return False
        # A redis-py error means redis-py is imported: no import here.
        redis = sys.modules.get("redis")
        if isinstance(exc, OSError) or (redis is not None and isinstance(exc, redis.RedisError)):
            raise UnavailableError(self._message) from exc
        return False
